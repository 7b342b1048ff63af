import { KeelError } from '../../errors/keel-error.ts';
import { type AuditDraft, AuditHasher, prepareAuditDraft } from '../../integrity/audit-chain.ts';
import type { AuditHead, AuditStore } from '../ports/audit-store.ts';
import type { WorkerClient } from './worker-client.ts';
import type { AuditRow } from './worker-protocol.ts';

/**
 * The SQLite adapter's audit store. Appends are chained here, on the main thread — validated,
 * serialised canonically and HMAC-hashed onto the head this process holds — and the storage
 * worker only inserts the rows, refusing any row that does not extend the stored chain. The
 * two threads thus share the work, and a lost batch can never leave a gap: every row chained
 * to it is refused, and the head is read again.
 *
 * @example
 * ```ts
 * const [appended] = await storage.audit.append([draft]); // { seq, hash }, once durable
 * ```
 */
export class SqliteAuditStore implements AuditStore {
  readonly #client: WorkerClient;
  readonly #hasher: AuditHasher | null;
  #head: AuditHead | undefined;
  #loadingHead: Promise<void> | undefined;
  #batch:
    | { readonly generation: number; readonly rows: AuditRow[]; readonly sent: Promise<void> }
    | undefined;
  #appending = 0;
  #drained: (() => void) | undefined;
  #closing = false;

  constructor(client: WorkerClient, auditKey: Uint8Array | null) {
    this.#client = client;
    this.#hasher = auditKey === null ? null : new AuditHasher(auditKey);
  }

  /** Reads the stored head once for all appends waiting on it. */
  #loadHead(): Promise<void> {
    this.#loadingHead ??= this.#client.call('audit.head', []).then(
      (head) => {
        this.#loadingHead = undefined;
        this.#head ??= head;
      },
      (error: unknown) => {
        this.#loadingHead = undefined;
        throw error;
      },
    );
    return this.#loadingHead;
  }

  append(drafts: readonly AuditDraft[]): Promise<readonly AuditHead[]> {
    if (this.#closing) {
      return Promise.reject(new KeelError('KEEL_SHUTTING_DOWN', 'storage is closing'));
    }
    this.#appending += 1;
    return this.#append(drafts).finally(() => {
      this.#appending -= 1;
      if (this.#appending === 0) this.#drained?.();
    });
  }

  /** Refuses new appends and waits for those already made (they complete or fail normally). */
  async drain(): Promise<void> {
    this.#closing = true;
    if (this.#appending === 0) return;
    await new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
  }

  async #append(drafts: readonly AuditDraft[]): Promise<readonly AuditHead[]> {
    const hasher = this.#hasher;
    if (hasher === null) {
      throw new KeelError('KEEL_AUDIT_KEY_MISSING', 'this storage was opened without an audit key');
    }
    // Validate all first: a batch is appended whole or not at all.
    const prepared = drafts.map(prepareAuditDraft);
    if (prepared.length === 0) return [];
    // After any await the head may have moved (another append claimed seqs) or been dropped
    // (a failed batch): take it fresh, synchronously, right before chaining.
    while (this.#head === undefined) await this.#loadHead();
    let head: AuditHead = this.#head;
    const rows = this.#openBatch();
    const appended: AuditHead[] = [];
    for (const { draft, data } of prepared) {
      const seq = head.seq + 1;
      const hash = hasher.hash(head.hash, seq, draft, data);
      rows.push([
        seq,
        draft.ts,
        draft.kind,
        draft.actor,
        draft.agentId,
        draft.runId,
        draft.subject,
        draft.outcome,
        draft.code,
        data,
        head.hash,
        hash,
      ]);
      head = { seq, hash };
      appended.push(head);
    }
    // Claim the seqs synchronously, before any await, so concurrent appends chain in order.
    this.#head = head;
    await this.#batch?.sent;
    return appended;
  }

  /**
   * The rows of the request that will carry this turn's appends. Every append made before the
   * storage client sends its queue joins the same request (one savepoint, one answer), and
   * that request travels — and commits — with whatever else was queued in the same turn, e.g.
   * the journal entry and budget settlement of the same syscall.
   */
  #openBatch(): AuditRow[] {
    if (this.#batch !== undefined && this.#batch.generation === this.#client.generation) {
      return this.#batch.rows;
    }
    const rows: AuditRow[] = [];
    const sent = this.#client.call('audit.insertChained', [rows]).then(
      () => undefined,
      (error: unknown) => {
        // The chain as this process saw it may be gone; read it again before the next append.
        this.#head = undefined;
        throw error;
      },
    );
    this.#batch = { generation: this.#client.generation, rows, sent };
    return rows;
  }

  head(): Promise<AuditHead> {
    return this.#client.call('audit.head', []);
  }

  read(fromSeq: number, limit: number) {
    return this.#client.call('audit.read', [fromSeq, limit]);
  }

  tail(limit: number) {
    return this.#client.call('audit.tail', [limit]);
  }

  count(): Promise<number> {
    return this.#client.call('audit.count', []);
  }
}
