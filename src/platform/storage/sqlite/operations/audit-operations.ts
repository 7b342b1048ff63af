import { KeelError } from '../../../errors/keel-error.ts';
import { AUDIT_GENESIS_HASH, type AuditRecord } from '../../../integrity/audit-chain.ts';
import { AUDIT_PAGE_LIMIT, type AuditHead } from '../../ports/audit-store.ts';
import {
  type HandlersFor,
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

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const auditOperations: HandlersFor<'audit'> = {
  'audit.insertChained': (context, rows) => {
    let head = readHead(context);
    const insert = context.statements.get(
      `INSERT INTO audit_log (${SELECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const row of rows) {
      const [seq, , , , , , , , , , prevHash, hash] = row;
      // The writer chained these rows onto the head it believed in; if an earlier batch was
      // lost, that head is gone and so is every row chained to it.
      if (seq !== head.seq + 1 || prevHash !== head.hash) {
        throw new KeelError(
          'KEEL_CONFLICT',
          `audit entry ${seq} does not extend the stored chain at #${head.seq}`,
          {
            retryable: true,
            details: { seq, head: head.seq },
          },
        );
      }
      insert.run(...row);
      head = { seq, hash };
    }
    context.auditHead = head;
    return head;
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
