import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import {
  type AuditBreak,
  AuditChainVerifier,
  type AuditDraft,
  AuditHasher,
  type AuditRecord,
} from '../../platform/integrity/audit-chain.ts';
import {
  AUDIT_PAGE_LIMIT,
  type AuditHead,
  type AuditStore,
} from '../../platform/storage/ports/audit-store.ts';

/** An audit entry as the kernel writes it; the time comes from the clock. */
export type AuditEntry = Omit<
  AuditDraft,
  'ts' | 'agentId' | 'runId' | 'subject' | 'outcome' | 'code' | 'data'
> &
  Partial<Pick<AuditDraft, 'agentId' | 'runId' | 'subject' | 'outcome' | 'code' | 'data'>>;

export interface AuditVerification {
  readonly intact: boolean;
  /** Entries checked and found sound (up to the first break). */
  readonly checked: number;
  /** Entries stored in all. */
  readonly total: number;
  /** The last sound entry. */
  readonly head: AuditHead;
  readonly firstBreak: AuditBreak | undefined;
}

const VERIFY_PAGE = 5_000;

/**
 * The kernel's view of the audit log: one entry per security-relevant decision, appended to
 * the hash chain and durable before `record` resolves.
 *
 * @example
 * ```ts
 * await audit.record({ kind: 'capability.grant', actor: 'operator:ana', agentId, data: { grant } });
 * const verification = await audit.verify();
 * ```
 */
export class AuditLog {
  readonly #store: AuditStore;
  readonly #clock: Clock;
  readonly #key: Uint8Array;

  constructor(store: AuditStore, clock: Clock, key: Uint8Array) {
    this.#store = store;
    this.#clock = clock;
    this.#key = key;
  }

  /** Appends one entry; resolves with its place in the chain once it is durable. */
  async record(entry: AuditEntry): Promise<AuditHead> {
    const [appended] = await this.#store.append([this.#draft(entry)]);
    if (appended === undefined) throw new Error('audit store returned no record');
    return appended;
  }

  /** Appends entries together (consecutive, one durable write); resolves once durable. */
  recordAll(entries: readonly AuditEntry[]): Promise<readonly AuditHead[]> {
    if (entries.length === 0) return Promise.resolve([]);
    return this.#store.append(entries.map((entry) => this.#draft(entry)));
  }

  #draft(entry: AuditEntry): AuditDraft {
    return {
      ts: this.#clock.now(),
      kind: entry.kind,
      actor: entry.actor,
      agentId: entry.agentId ?? null,
      runId: entry.runId ?? null,
      subject: entry.subject ?? null,
      outcome: entry.outcome ?? null,
      code: entry.code ?? null,
      data: entry.data ?? {},
    };
  }

  /**
   * Checks that this key wrote the chain's last entry, so that a node never extends a chain
   * with a different key (a lost `secrets.toml`, a wrong `KEEL_SECRET_AUDIT_KEY`): the result
   * would be a log that no key verifies. Throws `KEEL_AUDIT_KEY_MISSING` on a mismatch.
   */
  async assertKeyMatches(): Promise<void> {
    const matches = await auditKeyMatches(this.#store, this.#key);
    if (matches === false) {
      const [last] = await this.#store.tail(1);
      throw new KeelError(
        'KEEL_AUDIT_KEY_MISSING',
        `the audit key does not match the audit log (entry #${last?.seq ?? '?'} was written with another key)`,
        {
          hint: 'use the original audit_key (secrets.toml or KEEL_SECRET_AUDIT_KEY); if the log was tampered with, restore a verified backup',
        },
      );
    }
  }

  tail(limit: number): Promise<readonly AuditRecord[]> {
    return this.#store.tail(limit);
  }

  /**
   * Walks the whole chain from the first entry, page by page, recomputing every keyed hash.
   * Stops at the first break and names it.
   */
  async verify(
    options: {
      readonly onProgress?: (checked: number, total: number) => void;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<AuditVerification> {
    return verifyAuditStore(this.#store, this.#key, options);
  }
}

/**
 * Whether `key` wrote the last entry of the chain (`undefined` for an empty log): the cheap
 * check that a node is about to extend its own chain, not start an unverifiable one.
 *
 * @example
 * ```ts
 * if ((await auditKeyMatches(storage.audit, key)) === false) refuseToStart();
 * ```
 */
export async function auditKeyMatches(
  store: AuditStore,
  key: Uint8Array,
): Promise<boolean | undefined> {
  const [last] = await store.tail(1);
  if (last === undefined) return undefined;
  return new AuditHasher(key).hash(last.prevHash, last.seq, last) === last.hash;
}

/**
 * Verifies an audit store's chain with a key (also usable on a backup opened read-only).
 *
 * @example
 * ```ts
 * const verification = await verifyAuditStore(backup.audit, key, { signal });
 * ```
 */
export async function verifyAuditStore(
  store: AuditStore,
  key: Uint8Array,
  options: {
    readonly onProgress?: (checked: number, total: number) => void;
    readonly signal?: AbortSignal;
  } = {},
): Promise<AuditVerification> {
  const total = await store.count();
  const verifier = new AuditChainVerifier(key);
  let fromSeq = 1;
  for (;;) {
    options.signal?.throwIfAborted();
    const page = await store.read(fromSeq, Math.min(VERIFY_PAGE, AUDIT_PAGE_LIMIT));
    if (page.length === 0) break;
    for (const record of page) {
      if (!verifier.accept(record)) break;
    }
    options.onProgress?.(verifier.checked, total);
    if (verifier.firstBreak !== undefined) break;
    const last = page.at(-1);
    fromSeq = (last?.seq ?? fromSeq) + 1;
  }
  // Rows the reader never reached because seq numbers stopped early also count as a break:
  // a deleted row shows up as a gap, which the verifier reports as a sequence-gap.
  const firstBreak =
    verifier.firstBreak ??
    (verifier.checked < total
      ? {
          seq: verifier.head.seq + 1,
          reason: 'sequence-gap' as const,
          expected: String(verifier.head.seq + 1),
          actual: 'missing',
        }
      : undefined);
  return {
    intact: firstBreak === undefined,
    checked: verifier.checked,
    total,
    head: verifier.head,
    firstBreak,
  };
}
