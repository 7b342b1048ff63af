import { createHash } from 'node:crypto';
import { z } from 'zod';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { canonicalCopy } from '../../platform/integrity/canonical-json.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import { SYSCALL_KIND_PATTERN } from '../capabilities/capability-grant.ts';

/**
 * What an agent asks the kernel to do. `kind` selects the executor (`llm.chat`, `tool.call`,
 * `memory.write`, `hal.intent`, `a2a.send`, `clock.now`…); `resource` names what it acts on
 * (a tool, a model alias, a namespace, a device; empty when there is nothing to name);
 * `params` are the kind's arguments, JSON only.
 */
export interface SyscallIntent {
  readonly kind: string;
  readonly resource: string;
  readonly params: Readonly<Record<string, unknown>>;
}

/**
 * Who is calling. The runtime binds it to the worker's IPC channel: an agent cannot name
 * another identity, because it never supplies this object itself.
 */
export interface CallerIdentity {
  readonly agentId: string;
  /** The durable run the call belongs to, with the call's sequence number in that run. */
  readonly runId?: string;
  readonly seq?: number;
}

/** What an executor gets besides the intent. */
export interface ExecutionContext {
  readonly agentId: string;
  readonly runId: string | undefined;
  readonly seq: number | undefined;
  /** Stable across replays of the same `(runId, seq)`: give it to the outside world. */
  readonly idempotencyKey: string;
  readonly signal: AbortSignal;
  /**
   * An approver changed the parameters (edit-then-approve): the call runs with theirs, not
   * the agent's.
   */
  readonly edited: boolean;
  readonly logger: Logger;
  /**
   * Reports what the call has consumed so far, also when it is about to fail (a stream cut
   * after some output was produced): the gate settles the budget and records usage with the
   * latest report when the executor neither returns `usage` nor succeeds.
   */
  reportUsage(usage: Partial<BudgetAmounts>, accounting?: UsageAccounting): void;
  /** Passes a progress event (a streamed delta) to the caller, if it listens. Not journaled. */
  progress(event: JsonValue): void;
}

/** Model usage to persist with the call's record (per agent, run, model and provider). */
export interface UsageAccounting {
  readonly model: string;
  readonly provider: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** `null` when the model has no price (flagged, never priced at zero). */
  readonly costMicros: number | null;
}

export interface ExecutorResult {
  readonly value: JsonValue;
  /** What the call actually consumed; settles the budget reservation. */
  readonly usage?: Partial<BudgetAmounts>;
  /** Model usage to record in the same transaction as the journal entry and the audit entry. */
  readonly accounting?: UsageAccounting;
  /** What the call changed, for its audit entry (a written file's path and checksum). */
  readonly effect?: JsonObject;
}

/**
 * The contract a service implements to handle one syscall kind, registered with the kernel at
 * boot. `doExecute` is only ever called by the gate, after steps 1–5 passed.
 *
 * @example
 * ```ts
 * kernel.registerExecutor({
 *   specificationVersion: 'v1',
 *   kind: 'clock.now',
 *   doExecute: async () => ({ value: clock.now() }),
 * });
 * ```
 */
export interface SyscallExecutor {
  readonly specificationVersion: 'v1';
  readonly kind: string;
  /** Longest a call may take; default from configuration (`gate.default_timeout_ms`). */
  readonly timeoutMs?: number;
  /**
   * What to reserve before the call (tokens, cost, calls, wall time); `undefined` for kinds
   * that cost nothing. Wall time defaults to the timeout when calls are budgeted.
   */
  estimate?(intent: SyscallIntent, call: EstimateContext): Partial<BudgetAmounts> | undefined;
  /**
   * What the audit entry and an approver are shown of an intent's parameters, before the
   * gate's own bounds (long strings, long lists, deep nesting, 4 KiB) apply; default: the
   * parameters. A kind whose parameters may repeat earlier calls' (a chat sent whole carries
   * the conversation so far) keeps what is new and counts the rest: the intent's digest
   * covers all of it. Must accept any JSON parameters; a throw falls back to the default.
   */
  summarise?(intent: SyscallIntent): JsonObject;
  /**
   * What an approval of this call is bound to, when not the intent as sent (the default): the
   * digest of what the call does, and the `seq` of the run's earlier call it stands in for (a
   * call resent in another form after a refusal, which must come before it), so that the two
   * forms of one call share one approval. Called after `estimate`, only for a call that needs
   * an approval.
   */
  approvalSubject?(intent: SyscallIntent, caller: CallerIdentity): ApprovalSubject;
  doExecute(intent: SyscallIntent, context: ExecutionContext): Promise<ExecutorResult>;
}

const IntentSchema = z.strictObject({
  kind: z.string().max(64).regex(SYSCALL_KIND_PATTERN, 'a syscall kind such as tool.call'),
  resource: z.string().max(256).default(''),
  params: z.record(z.string(), z.unknown()).default({}),
});

/** What an approval of a call is bound to besides its agent and run (`approvalSubject`). */
export interface ApprovalSubject {
  /** SHA-256 (hex) of what the call does. */
  readonly digest: string;
  /** The earlier `seq` of the run the call stands in for; its own by default. */
  readonly seq?: number;
}

/** What an executor's `estimate` is told besides the intent. */
export interface EstimateContext {
  readonly caller: CallerIdentity;
  /** UTF-8 bytes of the intent's canonical JSON. */
  readonly intentBytes: number;
  /**
   * The most an intent may have (`gate.max_intent_bytes`): the bound for a request an executor
   * assembles from earlier calls' parts as well.
   */
  readonly maxIntentBytes: number;
}

/** A validated intent with its canonical form and digest, computed once. */
export interface ParsedIntent {
  readonly intent: SyscallIntent;
  readonly canonical: string;
  /** UTF-8 bytes of `canonical`. */
  readonly bytes: number;
  /** SHA-256 of the canonical intent. */
  readonly digest: string;
}

/**
 * Validates an intent from an untrusted caller: shape, kind syntax, JSON-only parameters and
 * total size. Throws `KEEL_INVALID_ARGUMENT` or `KEEL_PAYLOAD_TOO_LARGE`.
 *
 * @example
 * ```ts
 * const { intent, digest } = parseIntent({ kind: 'tool.call', resource: 'shell', params: { command: 'npm test' } }, 262_144);
 * ```
 */
export function parseIntent(value: unknown, maxBytes: number): ParsedIntent {
  const result = IntentSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path.join('.') || 'intent';
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `intent ${field}: ${issue?.message ?? 'invalid'}`,
      {
        details: { field },
      },
    );
  }
  let canonical: string;
  let copy: { readonly params: Record<string, unknown> };
  try {
    const form = canonicalCopy(result.data);
    canonical = form.text;
    copy = form.copy as typeof copy;
  } catch (error) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'intent params must be plain JSON', {
      cause: error,
    });
  }
  // JSON text escapes every lone surrogate as \udXXX: without that sequence there is none.
  if (canonical.includes('\\ud') && !wellFormed(result.data)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      'the intent contains text that is not well-formed Unicode (a lone surrogate)',
    );
  }
  const bytes =
    canonical.length > maxBytes ? Number.POSITIVE_INFINITY : Buffer.byteLength(canonical);
  if (bytes > maxBytes) {
    throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', `the intent is larger than ${maxBytes} bytes`, {
      details: { limit: maxBytes },
    });
  }
  const intent: SyscallIntent = Object.freeze({
    kind: result.data.kind,
    resource: result.data.resource,
    params: Object.freeze(copy.params),
  });
  return {
    intent,
    canonical,
    bytes,
    digest: createHash('sha256').update(canonical).digest('hex'),
  };
}

/**
 * Whether every string in a value (keys included) is well-formed UTF-16. A lone surrogate
 * cannot be stored as UTF-8 unchanged, so text with one would read back differently from
 * what was hashed and journaled.
 */
function wellFormed(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed();
  // Only values canonical JSON accepted get here: bounded in depth and without cycles.
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) return value.every(wellFormed);
  return Object.entries(value).every(([key, member]) => key.isWellFormed() && wellFormed(member));
}

/**
 * The idempotency key of a call: derived from `(runId, seq)` so that a replay reuses it.
 *
 * @example
 * ```ts
 * idempotencyKeyFor('run_1', 3); // the same 32 hex characters every time
 * ```
 */
export function idempotencyKeyFor(runId: string, seq: number): string {
  return createHash('sha256').update(`${runId}\n${seq}`).digest('hex').slice(0, 32);
}
