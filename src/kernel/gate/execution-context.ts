import { randomUUID } from 'node:crypto';
import type { Logger } from '../../platform/observability/logger.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import {
  type CallerIdentity,
  type ExecutionContext,
  idempotencyKeyFor,
  type UsageAccounting,
} from './syscall.ts';

/**
 * The context an executor gets. Its logger and idempotency key are made on first use: most
 * executors need neither, and a child logger (redaction set-up) and fresh randomness cost
 * more than the rest of a cheap syscall.
 *
 * @example
 * ```ts
 * const context = createExecutionContext(identity, agent.id, signal, logger);
 * await executor.doExecute(intent, context);
 * ```
 */
export function createExecutionContext(
  identity: CallerIdentity,
  agentId: string,
  signal: AbortSignal,
  logger: Logger,
  onProgress?: (event: JsonValue) => void,
  edited = false,
): ExecutionContext & { readonly logger: Logger; readonly reported: ReportedUsage | undefined } {
  let callLogger: Logger | undefined;
  let idempotencyKey: string | undefined;
  let reported: ReportedUsage | undefined;
  return {
    agentId,
    runId: identity.runId,
    seq: identity.seq,
    signal,
    edited,
    get idempotencyKey() {
      idempotencyKey ??=
        identity.runId !== undefined && identity.seq !== undefined
          ? idempotencyKeyFor(identity.runId, identity.seq)
          : randomUUID();
      return idempotencyKey;
    },
    get logger() {
      callLogger ??= logger.child({ agentId, runId: identity.runId, seq: identity.seq });
      return callLogger;
    },
    get reported() {
      return reported;
    },
    reportUsage(usage, accounting) {
      reported = { usage: { ...usage }, accounting };
    },
    progress(event) {
      if (onProgress === undefined || signal.aborted) return;
      try {
        onProgress(event);
      } catch (error) {
        // A listener that throws loses its events; the call itself goes on.
        logger.warn({ err: error }, 'a syscall progress listener failed');
      }
    },
  };
}

/** The latest usage an executor reported through its context. */
export interface ReportedUsage {
  readonly usage: Partial<BudgetAmounts>;
  readonly accounting: UsageAccounting | undefined;
}
