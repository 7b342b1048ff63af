import { KeelError } from '../../../errors/keel-error.ts';
import type { ApprovalRecord, ApprovalState } from '../../ports/approval-store.ts';
import type { JsonObject } from '../../ports/json-value.ts';
import {
  CommittedFailure,
  fromJsonColumn,
  type HandlersFor,
  nullableNumber,
  nullableString,
  type OperationContext,
  pageSize,
  type Row,
  toJsonColumn,
} from './operation-context.ts';

const COLUMNS =
  'id, agent_id, run_id, seq, kind, resource, intent_digest, summary, reason, state, requested_at, expires_at, decided_at, decided_by, note, consumed_at, param_edits';

function toRecord(row: Row): ApprovalRecord {
  return {
    id: String(row.id),
    agentId: String(row.agent_id),
    runId: nullableString(row.run_id),
    seq: nullableNumber(row.seq),
    kind: String(row.kind),
    resource: String(row.resource),
    intentDigest: String(row.intent_digest),
    summary: fromJsonColumn<JsonObject>(row.summary),
    reason: String(row.reason),
    state: String(row.state) as ApprovalState,
    requestedAt: Number(row.requested_at),
    expiresAt: Number(row.expires_at),
    decidedAt: nullableNumber(row.decided_at),
    decidedBy: nullableString(row.decided_by),
    note: nullableString(row.note),
    consumedAt: nullableNumber(row.consumed_at),
    paramEdits: row.param_edits === null ? null : fromJsonColumn<JsonObject>(row.param_edits),
  };
}

function byId(context: OperationContext, id: string): ApprovalRecord | undefined {
  const row = context.statements.get(`SELECT ${COLUMNS} FROM approvals WHERE id = ?`).get(id) as
    | Row
    | undefined;
  return row === undefined ? undefined : toRecord(row);
}

function required(context: OperationContext, id: string): ApprovalRecord {
  const record = byId(context, id);
  if (record === undefined) throw new KeelError('KEEL_NOT_FOUND', `no approval ${id}`);
  return record;
}

function expire(context: OperationContext, id: string, now: number): void {
  context.statements
    .get(
      "UPDATE approvals SET state = 'expired', decided_at = ? WHERE id = ? AND state = 'pending'",
    )
    .run(now, id);
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const approvalOperations: HandlersFor<'approvals'> = {
  'approvals.create': (context, approval) => {
    if (approval.expiresAt <= approval.requestedAt) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'an approval must expire after it is requested');
    }
    if (
      context.statements.get('SELECT 1 FROM agents WHERE id = ?').get(approval.agentId) ===
      undefined
    ) {
      throw new KeelError('KEEL_NOT_FOUND', `no agent ${approval.agentId}`);
    }
    if (byId(context, approval.id) !== undefined) {
      throw new KeelError('KEEL_CONFLICT', `approval ${approval.id} exists`);
    }
    context.statements
      .get(
        `INSERT INTO approvals (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, NULL, NULL, NULL, NULL, NULL)`,
      )
      .run(
        approval.id,
        approval.agentId,
        approval.runId,
        approval.seq,
        approval.kind,
        approval.resource,
        approval.intentDigest,
        toJsonColumn(approval.summary, 'summary'),
        approval.reason,
        approval.requestedAt,
        approval.expiresAt,
      );
    return required(context, approval.id);
  },
  'approvals.get': (context, id) => byId(context, id),
  'approvals.list': (context, filter = {}) => {
    const conditions: string[] = [];
    const values: string[] = [];
    if (filter.state !== undefined) {
      conditions.push('state = ?');
      values.push(filter.state);
    }
    if (filter.agentId !== undefined) {
      conditions.push('agent_id = ?');
      values.push(filter.agentId);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const rows = context.statements
      .get(`SELECT ${COLUMNS} FROM approvals ${where} ORDER BY requested_at DESC, id DESC LIMIT ?`)
      .all(...values, pageSize(filter.limit, 100, 1000)) as Row[];
    return rows.map(toRecord);
  },
  'approvals.findLatest': (context, agentId, intentDigest) => {
    const row = context.statements
      .get(
        `SELECT ${COLUMNS} FROM approvals WHERE agent_id = ? AND intent_digest = ? ORDER BY requested_at DESC, rowid DESC LIMIT 1`,
      )
      .get(agentId, intentDigest) as Row | undefined;
    return row === undefined ? undefined : toRecord(row);
  },
  'approvals.decide': (context, id, decision) => {
    const current = required(context, id);
    if (current.state === 'pending' && current.expiresAt <= decision.now) {
      expire(context, id, decision.now);
      throw new CommittedFailure(
        new KeelError('KEEL_APPROVAL_EXPIRED', `approval ${id} expired before it was decided`, {
          details: { approvalId: id, expiresAt: current.expiresAt },
        }),
      );
    }
    if (current.state !== 'pending') {
      throw new KeelError('KEEL_CONFLICT', `approval ${id} is already ${current.state}`, {
        details: { approvalId: id, state: current.state },
      });
    }
    if (decision.paramEdits !== undefined && decision.state !== 'approved') {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'only an approval can edit the parameters', {
        details: { field: 'paramEdits' },
      });
    }
    const edits =
      decision.paramEdits === undefined ? null : toJsonColumn(decision.paramEdits, 'paramEdits');
    context.statements
      .get(
        "UPDATE approvals SET state = ?, decided_at = ?, decided_by = ?, note = ?, param_edits = ? WHERE id = ? AND state = 'pending'",
      )
      .run(decision.state, decision.now, decision.decidedBy, decision.note ?? null, edits, id);
    return required(context, id);
  },
  'approvals.expireDue': (context, now) => {
    const rows = context.statements
      .get(
        `SELECT ${COLUMNS} FROM approvals WHERE state = 'pending' AND expires_at <= ? ORDER BY expires_at`,
      )
      .all(now) as Row[];
    for (const row of rows) expire(context, String(row.id), now);
    return rows.map((row) => required(context, String(row.id)));
  },
  'approvals.consume': (context, id, now) => {
    const current = required(context, id);
    if (current.state !== 'approved') {
      throw new KeelError('KEEL_CONFLICT', `approval ${id} is ${current.state}, not approved`, {
        details: { approvalId: id, state: current.state },
      });
    }
    if (current.consumedAt !== null) {
      throw new KeelError('KEEL_CONFLICT', `approval ${id} was already used`, {
        details: { approvalId: id, consumedAt: current.consumedAt },
      });
    }
    if (current.expiresAt <= now) {
      throw new KeelError('KEEL_APPROVAL_EXPIRED', `approval ${id} expired before it was used`, {
        details: { approvalId: id, expiresAt: current.expiresAt },
      });
    }
    context.statements
      .get('UPDATE approvals SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL')
      .run(now, id);
    return required(context, id);
  },
};
