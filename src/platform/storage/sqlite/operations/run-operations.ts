import { KeelError } from '../../../errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../ports/json-value.ts';
import {
  FINAL_RUN_STATUSES,
  type JournalEntry,
  RUN_PAGE_LIMIT,
  type RunRecord,
  type RunStatus,
} from '../../ports/run-store.ts';
import {
  fromJsonColumn,
  type HandlersFor,
  type OperationContext,
  pageSize,
  type Row,
  toJsonColumn,
} from './operation-context.ts';

const RUN_COLUMNS =
  'id, agent_id, status, task, result, error, priority, attempts, origin, created_at, updated_at';
const JOURNAL_COLUMNS = 'run_id, seq, kind, intent_digest, outcome, result, recorded_at';

function toRun(row: Row): RunRecord {
  return {
    id: String(row.id),
    agentId: String(row.agent_id),
    status: String(row.status) as RunStatus,
    task: fromJsonColumn<JsonObject>(row.task),
    result: row.result === null ? null : fromJsonColumn<JsonValue>(row.result),
    error: row.error === null ? null : fromJsonColumn<JsonValue>(row.error),
    priority: Number(row.priority),
    attempts: Number(row.attempts),
    origin: String(row.origin),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function toJournal(row: Row): JournalEntry {
  return {
    runId: String(row.run_id),
    seq: Number(row.seq),
    kind: String(row.kind),
    intentDigest: String(row.intent_digest),
    outcome: String(row.outcome) as 'ok' | 'error',
    result: fromJsonColumn<JsonValue>(row.result),
    recordedAt: Number(row.recorded_at),
  };
}

function byId(context: OperationContext, id: string): RunRecord | undefined {
  const row = context.statements.get(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = ?`).get(id) as
    | Row
    | undefined;
  return row === undefined ? undefined : toRun(row);
}

function headOf(context: OperationContext, runId: string): number {
  const row = context.statements
    .get('SELECT coalesce(max(seq), 0) AS head FROM run_journal WHERE run_id = ?')
    .get(runId) as Row;
  return Number(row.head);
}

function required(context: OperationContext, id: string): RunRecord {
  const run = byId(context, id);
  if (run === undefined) throw new KeelError('KEEL_NOT_FOUND', `no run ${id}`);
  return run;
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const runOperations: HandlersFor<'runs'> = {
  'runs.create': (context, run) => {
    if (
      context.statements.get('SELECT 1 FROM agents WHERE id = ?').get(run.agentId) === undefined
    ) {
      throw new KeelError('KEEL_NOT_FOUND', `no agent ${run.agentId}`);
    }
    if (byId(context, run.id) !== undefined) {
      throw new KeelError('KEEL_CONFLICT', `run ${run.id} exists`);
    }
    context.statements
      .get(
        `INSERT INTO runs (${RUN_COLUMNS}) VALUES (?, ?, 'pending', ?, NULL, NULL, ?, 0, ?, ?, ?)`,
      )
      .run(
        run.id,
        run.agentId,
        toJsonColumn(run.task, 'task'),
        run.priority ?? 5,
        run.origin ?? 'api',
        run.now,
        run.now,
      );
    return required(context, run.id);
  },
  'runs.get': (context, id) => byId(context, id),
  'runs.list': (context, filter = {}) => {
    const conditions: string[] = [];
    const values: (string | number)[] = [];
    if (filter.after !== undefined) {
      // The order below, resumed after the given run.
      conditions.push('(created_at < ? OR (created_at = ? AND id < ?))');
      values.push(filter.after.createdAt, filter.after.createdAt, filter.after.id);
    }
    if (filter.agentId !== undefined) {
      conditions.push('agent_id = ?');
      values.push(filter.agentId);
    }
    if (filter.status !== undefined) {
      conditions.push('status = ?');
      values.push(filter.status);
    }
    if (filter.statuses !== undefined) {
      if (filter.statuses.length === 0) return [];
      conditions.push(`status IN (${filter.statuses.map(() => '?').join(', ')})`);
      values.push(...filter.statuses);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const rows = context.statements
      .get(`SELECT ${RUN_COLUMNS} FROM runs ${where} ORDER BY created_at DESC, id DESC LIMIT ?`)
      .all(...values, pageSize(filter.limit, 100, RUN_PAGE_LIMIT)) as Row[];
    return rows.map(toRun);
  },
  'runs.updateStatus': (context, id, status, now, error) => {
    if (FINAL_RUN_STATUSES.includes(status)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `${status} ends a run: use runs.end`);
    }
    const run = required(context, id);
    if (FINAL_RUN_STATUSES.includes(run.status)) return run;
    context.statements
      .get('UPDATE runs SET status = ?, error = coalesce(?, error), updated_at = ? WHERE id = ?')
      .run(status, error === undefined ? null : toJsonColumn(error, 'error'), now, id);
    return required(context, id);
  },
  'runs.requeueSuspended': (context, id, now) => {
    const run = required(context, id);
    if (run.status !== 'suspended') return { requeued: false, run };
    context.statements
      .get("UPDATE runs SET status = 'pending', updated_at = ? WHERE id = ?")
      .run(now, id);
    return { requeued: true, run: required(context, id) };
  },
  'runs.startAttempt': (context, id, now, maxAttempts) => {
    const run = required(context, id);
    const journalHead = headOf(context, id);
    if (FINAL_RUN_STATUSES.includes(run.status)) return { outcome: 'ended', run, journalHead };
    if (run.attempts >= maxAttempts) return { outcome: 'exhausted', run, journalHead };
    context.statements
      .get(
        "UPDATE runs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
      )
      .run(now, id);
    return { outcome: 'started', run: required(context, id), journalHead };
  },
  'runs.end': (context, id, status, now, result, error) => {
    if (!FINAL_RUN_STATUSES.includes(status)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `${status} does not end a run`);
    }
    const run = required(context, id);
    if (FINAL_RUN_STATUSES.includes(run.status)) return { ended: false, run };
    context.statements
      .get(
        'UPDATE runs SET status = ?, result = coalesce(?, result), error = coalesce(?, error), updated_at = ? WHERE id = ?',
      )
      .run(
        status,
        result === undefined ? null : toJsonColumn(result, 'result'),
        error === undefined ? null : toJsonColumn(error, 'error'),
        now,
        id,
      );
    return { ended: true, run: required(context, id) };
  },
  'runs.returnAttempt': (context, id, now) => {
    required(context, id);
    context.statements
      .get(
        "UPDATE runs SET status = 'pending', attempts = max(0, attempts - 1), updated_at = ? WHERE id = ? AND status = 'running'",
      )
      .run(now, id);
    return required(context, id);
  },
  'runs.journalCounts': (context, runIds) => {
    const counts: Record<string, number> = {};
    const statement = context.statements.get(
      'SELECT count(*) AS steps FROM run_journal WHERE run_id = ?',
    );
    for (const runId of runIds.slice(0, 1000)) {
      counts[runId] = Number((statement.get(runId) as Row).steps);
    }
    return counts;
  },
  'runs.appendJournal': (context, entry) => {
    if (context.statements.get('SELECT 1 FROM runs WHERE id = ?').get(entry.runId) === undefined) {
      throw new KeelError('KEEL_NOT_FOUND', `no run ${entry.runId}`);
    }
    const inserted = context.statements
      .get(
        `INSERT INTO run_journal (${JOURNAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, seq) DO NOTHING`,
      )
      .run(
        entry.runId,
        entry.seq,
        entry.kind,
        entry.intentDigest,
        entry.outcome,
        toJsonColumn(entry.result, 'result'),
        entry.recordedAt,
      );
    if (Number(inserted.changes) === 0) {
      throw new KeelError('KEEL_CONFLICT', `run ${entry.runId} already recorded seq ${entry.seq}`, {
        details: { runId: entry.runId, seq: entry.seq },
      });
    }
  },
  'runs.getJournal': (context, runId, seq) => {
    const row = context.statements
      .get(`SELECT ${JOURNAL_COLUMNS} FROM run_journal WHERE run_id = ? AND seq = ?`)
      .get(runId, seq) as Row | undefined;
    return row === undefined ? undefined : toJournal(row);
  },
  'runs.journalHead': (context, runId) => headOf(context, runId),
  'runs.listJournal': (context, runId) =>
    (
      context.statements
        .get(`SELECT ${JOURNAL_COLUMNS} FROM run_journal WHERE run_id = ? ORDER BY seq`)
        .all(runId) as Row[]
    ).map(toJournal),
};
