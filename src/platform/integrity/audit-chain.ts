import { createHash, type Hash } from 'node:crypto';
import { KeelError } from '../errors/keel-error.ts';
import { CanonicalJsonError, canonicalJson } from './canonical-json.ts';

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

const SHA256_BLOCK_BYTES = 64;

/**
 * HMAC-SHA256 (RFC 2104) with the key's inner and outer pad states computed once, so each
 * message costs two hash copies instead of a full keyed set-up (about 3 µs rather than 11 µs
 * here). Output is identical to `createHmac('sha256', key)`.
 *
 * @example
 * ```ts
 * const hasher = new AuditHasher(key);
 * const hash = hasher.hash(previous.hash, previous.seq + 1, draft);
 * ```
 */
export class AuditHasher {
  readonly #inner: Hash;
  readonly #outer: Hash;

  constructor(key: Uint8Array) {
    const block = Buffer.alloc(SHA256_BLOCK_BYTES);
    (key.length > SHA256_BLOCK_BYTES
      ? createHash('sha256').update(key).digest()
      : Buffer.from(key)
    ).copy(block);
    this.#inner = createHash('sha256').update(block.map((byte) => byte ^ 0x36));
    this.#outer = createHash('sha256').update(block.map((byte) => byte ^ 0x5c));
    block.fill(0);
  }

  /** HMAC-SHA256 of a UTF-8 message, as lowercase hex. */
  hmac(message: string): string {
    const inner = this.#inner.copy().update(message).digest();
    return this.#outer.copy().update(inner).digest('hex');
  }

  /**
   * The keyed hash that links an entry to its predecessor:
   * HMAC-SHA256(key, prevHash ‖ "\n" ‖ canonicalJson(entry fields)). Without the key nobody
   * can rewrite an entry and recompute a chain that verifies. `canonicalData` may be passed
   * when the caller already has `canonicalJson(draft.data)`.
   */
  hash(prevHash: string, seq: number, draft: AuditDraft, canonicalData?: string): string {
    return this.hmac(
      `${prevHash}\n${auditBody(seq, draft, canonicalData ?? canonicalJson(draft.data))}`,
    );
  }
}

const text = (value: string | null): string => (value === null ? 'null' : JSON.stringify(value));

/**
 * `canonicalJson` of an entry's hashed fields, assembled directly (keys in sorted order) from
 * the already-canonical data, to avoid serialising the data twice.
 *
 * @example
 * ```ts
 * auditBody(1, draft, canonicalJson(draft.data)); // '{"actor":…,"ts":…}'
 * ```
 */
export function auditBody(seq: number, draft: AuditDraft, canonicalData: string): string {
  if (!Number.isFinite(seq) || !Number.isFinite(draft.ts))
    throw new CanonicalJsonError('canonicalJson: non-finite number');
  return `{"actor":${text(draft.actor)},"agentId":${text(draft.agentId)},"code":${text(draft.code)},"data":${canonicalData},"kind":${text(draft.kind)},"outcome":${text(draft.outcome)},"runId":${text(draft.runId)},"seq":${JSON.stringify(seq)},"subject":${text(draft.subject)},"ts":${JSON.stringify(draft.ts)}}`;
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
  readonly #hasher: AuditHasher;
  #expectedSeq = 1;
  #previousHash = AUDIT_GENESIS_HASH;
  #checked = 0;
  #firstBreak: AuditBreak | undefined;

  constructor(key: Uint8Array) {
    this.#hasher = new AuditHasher(key);
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
    const expected = this.#hasher.hash(record.prevHash, record.seq, record);
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

/** The most bytes an entry's canonical `data` may take. */
export const MAX_AUDIT_DATA_BYTES = 1024 * 1024;

const nullableText = (value: unknown): value is string | null =>
  value === null || typeof value === 'string';

/**
 * Validates a draft from a caller and returns it normalised (missing optional fields as null)
 * with its canonical data, so that writers hash and store exactly the same text. Throws
 * `KEEL_INVALID_ARGUMENT` or `KEEL_PAYLOAD_TOO_LARGE`.
 *
 * @example
 * ```ts
 * const { draft: normalised, data } = prepareAuditDraft(draft);
 * ```
 */
export function prepareAuditDraft(draft: AuditDraft): {
  readonly draft: AuditDraft;
  readonly data: string;
} {
  if (typeof draft.kind !== 'string' || draft.kind.length === 0 || draft.kind.length > 200) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'an audit entry needs a kind of 1–200 characters');
  }
  if (typeof draft.actor !== 'string' || draft.actor.length === 0 || draft.actor.length > 300) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      'an audit entry needs an actor of 1–300 characters',
    );
  }
  if (!Number.isSafeInteger(draft.ts)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'an audit entry needs an integer ts');
  }
  // Text columns are stored as UTF-8, which cannot hold a lone surrogate: make every text
  // field well-formed before hashing so that what is hashed is what is read back.
  const text = (value: string | null | undefined): string | null =>
    typeof value === 'string' ? value.toWellFormed() : (value ?? null);
  const normalised: AuditDraft = {
    ts: draft.ts,
    kind: draft.kind.toWellFormed(),
    actor: draft.actor.toWellFormed(),
    agentId: text(draft.agentId),
    runId: text(draft.runId),
    subject: text(draft.subject),
    outcome: text(draft.outcome),
    code: text(draft.code),
    data: draft.data,
  };
  for (const field of ['agentId', 'runId', 'subject', 'outcome', 'code'] as const) {
    const value = normalised[field];
    if (!nullableText(value) || (value !== null && value.length > 1000)) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `audit entry ${field} must be a string of at most 1000 characters or null`,
      );
    }
  }
  if (typeof draft.data !== 'object' || draft.data === null || Array.isArray(draft.data)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'audit entry data must be an object');
  }
  let data: string;
  try {
    data = canonicalJson(draft.data);
  } catch (error) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'audit entry data must be plain JSON', {
      cause: error,
    });
  }
  if (data.length > MAX_AUDIT_DATA_BYTES || Buffer.byteLength(data) > MAX_AUDIT_DATA_BYTES) {
    throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', 'audit entry data is too large', {
      details: { limit: MAX_AUDIT_DATA_BYTES },
    });
  }
  return { draft: normalised, data };
}
