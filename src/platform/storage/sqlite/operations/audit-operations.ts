import { KeelError } from '../../../errors/keel-error.ts';
import {
  AUDIT_GENESIS_HASH,
  type AuditDraft,
  type AuditRecord,
  computeAuditHash,
} from '../../../integrity/audit-chain.ts';
import { canonicalJson } from '../../../integrity/canonical-json.ts';
import { AUDIT_PAGE_LIMIT, type AuditHead } from '../../ports/audit-store.ts';
import {
  type HandlersFor,
  MAX_JSON_BYTES,
  nullableString,
  type OperationContext,
  pageSize,
  type Row,
} from './operation-context.ts';

const SELECT_COLUMNS =
  'seq, ts, kind, actor, agent_id, run_id, subject, outcome, code, data, prev_hash, hash';

function toRecord(row: Row): AuditRecord {
  return {
    seq: Number(row.seq),
    ts: Number(row.ts),
    kind: String(row.kind),
    actor: String(row.actor),
    agentId: nullableString(row.agent_id),
    runId: nullableString(row.run_id),
    subject: nullableString(row.subject),
    outcome: nullableString(row.outcome),
    code: nullableString(row.code),
    data: JSON.parse(String(row.data)) as Record<string, unknown>,
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  };
}

function readHead(context: OperationContext): AuditHead {
  if (context.auditHead !== undefined) return context.auditHead;
  const row = context.statements
    .get('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1')
    .get() as Row | undefined;
  const head =
    row === undefined
      ? { seq: 0, hash: AUDIT_GENESIS_HASH }
      : { seq: Number(row.seq), hash: String(row.hash) };
  context.auditHead = head;
  return head;
}

function checkDraft(draft: AuditDraft): string {
  if (typeof draft.kind !== 'string' || draft.kind.length === 0 || draft.kind.length > 200) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'an audit entry needs a kind of 1–200 characters');
  }
  if (typeof draft.actor !== 'string' || draft.actor.length === 0) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'an audit entry needs an actor');
  }
  if (!Number.isSafeInteger(draft.ts)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'an audit entry needs an integer ts');
  }
  if (typeof draft.data !== 'object' || draft.data === null || Array.isArray(draft.data)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'audit entry data must be an object');
  }
  const data = canonicalJson(draft.data);
  if (Buffer.byteLength(data) > MAX_JSON_BYTES) {
    throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', 'audit entry data is too large', {
      details: { limit: MAX_JSON_BYTES },
    });
  }
  return data;
}

export const auditOperations: HandlersFor<'audit'> = {
  'audit.append': (context, drafts) => {
    if (context.auditKey === null) {
      throw new KeelError('KEEL_AUDIT_KEY_MISSING', 'this storage was opened without an audit key');
    }
    const key = context.auditKey;
    const insert = context.statements.get(
      `INSERT INTO audit_log (${SELECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    let head = readHead(context);
    const records: AuditRecord[] = [];
    for (const draft of drafts) {
      const data = checkDraft(draft);
      // The hash is computed over what a reader will get back: the data as stored.
      const stored: AuditDraft = {
        ts: draft.ts,
        kind: draft.kind,
        actor: draft.actor,
        agentId: draft.agentId ?? null,
        runId: draft.runId ?? null,
        subject: draft.subject ?? null,
        outcome: draft.outcome ?? null,
        code: draft.code ?? null,
        data: JSON.parse(data) as Record<string, unknown>,
      };
      const seq = head.seq + 1;
      const hash = computeAuditHash(key, head.hash, seq, stored);
      insert.run(
        seq,
        stored.ts,
        stored.kind,
        stored.actor,
        stored.agentId,
        stored.runId,
        stored.subject,
        stored.outcome,
        stored.code,
        data,
        head.hash,
        hash,
      );
      records.push({ ...stored, seq, prevHash: head.hash, hash });
      head = { seq, hash };
    }
    context.auditHead = head;
    return records;
  },
  'audit.head': (context) => readHead(context),
  'audit.read': (context, fromSeq, limit) => {
    const rows = context.statements
      .get(`SELECT ${SELECT_COLUMNS} FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?`)
      .all(Math.max(0, Math.floor(fromSeq)), pageSize(limit, 100, AUDIT_PAGE_LIMIT)) as Row[];
    return rows.map(toRecord);
  },
  'audit.tail': (context, limit) => {
    const rows = context.statements
      .get(`SELECT ${SELECT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT ?`)
      .all(pageSize(limit, 20, AUDIT_PAGE_LIMIT)) as Row[];
    return rows.map(toRecord).reverse();
  },
  'audit.count': (context) => {
    const row = context.statements.get('SELECT count(*) AS count FROM audit_log').get() as Row;
    return Number(row.count);
  },
};
