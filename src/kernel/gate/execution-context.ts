import { randomUUID } from 'node:crypto';
import type { Logger } from '../../platform/observability/logger.ts';
import { type CallerIdentity, type ExecutionContext, idempotencyKeyFor } from './syscall.ts';

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
): ExecutionContext & { readonly logger: Logger } {
  let callLogger: Logger | undefined;
  let idempotencyKey: string | undefined;
  return {
    agentId,
    runId: identity.runId,
    seq: identity.seq,
    signal,
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
  };
}
