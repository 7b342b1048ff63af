import type { AuditDraft, AuditRecord } from '../../integrity/audit-chain.ts';

export type { AuditDraft, AuditRecord } from '../../integrity/audit-chain.ts';

/** The head of the chain: the last entry's sequence number and hash (0 and genesis if empty). */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * The append-only, hash-chained audit log. There is no update and no delete. The store, as
 * the single writer of the chain, assigns `seq`, `prevHash` and `hash` (with the audit key it
 * was opened with) atomically with the insert.
 *
 * @example
 * ```ts
 * const [appended] = await storage.audit.append([draft]); // { seq, hash }
 * ```
 */
export interface AuditStore {
  /**
   * Appends drafts atomically with consecutive sequence numbers; resolves once durable, with
   * each entry's place in the chain.
   */
  append(drafts: readonly AuditDraft[]): Promise<readonly AuditHead[]>;
  head(): Promise<AuditHead>;
  /** Records with `seq >= fromSeq` in ascending order, at most `limit` (≤ 10,000). */
  read(fromSeq: number, limit: number): Promise<readonly AuditRecord[]>;
  /** The last `limit` records, in ascending order. */
  tail(limit: number): Promise<readonly AuditRecord[]>;
  count(): Promise<number>;
}

/** The most records one `read` or `tail` call returns. */
export const AUDIT_PAGE_LIMIT = 10_000;
