import { createHmac } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';

/** The previous-hash of the first entry of a chain. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/** An audit entry as its author submits it; storage assigns `seq`, `prevHash` and `hash`. */
export interface AuditDraft {
  /** Epoch milliseconds. */
  readonly ts: number;
  /** What happened, dotted: `syscall.allow`, `syscall.deny`, `capability.grant`, `node.start`… */
  readonly kind: string;
  /** Who caused it: `agent:<id>`, `operator:<name>`, `node:<id>`, `system`. */
  readonly actor: string;
  readonly agentId: string | null;
  readonly runId: string | null;
  /** What it was about, e.g. `tool.call shell`. */
  readonly subject: string | null;
  /** The decision or result: `allowed`, `denied`, `ok`, `error`, … */
  readonly outcome: string | null;
  /** The error code of a denial or failure. */
  readonly code: string | null;
  /** Structured context; JSON only. */
  readonly data: Readonly<Record<string, unknown>>;
}

/** A stored audit entry: a draft plus its place in the hash chain. */
export interface AuditRecord extends AuditDraft {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * The keyed hash that links an entry to its predecessor:
 * HMAC-SHA256(key, prevHash ‖ canonicalJson(entry fields)). Without the key nobody can rewrite
 * an entry and recompute a chain that verifies.
 *
 * @example
 * ```ts
 * const hash = computeAuditHash(key, AUDIT_GENESIS_HASH, 1, draft);
 * ```
 */
export function computeAuditHash(
  key: Uint8Array,
  prevHash: string,
  seq: number,
  draft: AuditDraft,
): string {
  const body = canonicalJson({
    seq,
    ts: draft.ts,
    kind: draft.kind,
    actor: draft.actor,
    agentId: draft.agentId,
    runId: draft.runId,
    subject: draft.subject,
    outcome: draft.outcome,
    code: draft.code,
    data: draft.data,
  });
  return createHmac('sha256', key).update(prevHash).update('\n').update(body).digest('hex');
}

/** Why verification stopped at an entry. */
export type AuditBreakReason = 'sequence-gap' | 'previous-hash-mismatch' | 'hash-mismatch';

export interface AuditBreak {
  readonly seq: number;
  readonly reason: AuditBreakReason;
  readonly expected: string;
  readonly actual: string;
}

/**
 * Verifies a chain incrementally: feed records in ascending `seq` order; the first break is
 * kept and returned by every later call.
 *
 * @example
 * ```ts
 * const verifier = new AuditChainVerifier(key);
 * for (const record of page) verifier.accept(record);
 * verifier.firstBreak; // undefined when intact
 * ```
 */
export class AuditChainVerifier {
  readonly #key: Uint8Array;
  #expectedSeq = 1;
  #previousHash = AUDIT_GENESIS_HASH;
  #checked = 0;
  #firstBreak: AuditBreak | undefined;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  get checked(): number {
    return this.#checked;
  }

  get firstBreak(): AuditBreak | undefined {
    return this.#firstBreak;
  }

  get head(): { seq: number; hash: string } {
    return { seq: this.#expectedSeq - 1, hash: this.#previousHash };
  }

  /** Checks one record; returns false once the chain is broken. */
  accept(record: AuditRecord): boolean {
    if (this.#firstBreak !== undefined) return false;
    if (record.seq !== this.#expectedSeq) {
      return this.#break(record.seq, 'sequence-gap', String(this.#expectedSeq), String(record.seq));
    }
    if (record.prevHash !== this.#previousHash) {
      return this.#break(record.seq, 'previous-hash-mismatch', this.#previousHash, record.prevHash);
    }
    const expected = computeAuditHash(this.#key, record.prevHash, record.seq, record);
    if (expected !== record.hash) {
      return this.#break(record.seq, 'hash-mismatch', expected, record.hash);
    }
    this.#checked += 1;
    this.#expectedSeq += 1;
    this.#previousHash = record.hash;
    return true;
  }

  #break(seq: number, reason: AuditBreakReason, expected: string, actual: string): false {
    this.#firstBreak = { seq, reason, expected, actual };
    return false;
  }
}
