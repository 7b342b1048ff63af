import { isKeelError, KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { CanonicalJsonError } from '../../platform/integrity/canonical-json.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import { toAmounts } from '../budgets/budget-ledger.ts';
import { describeIntent } from './describe-intent.ts';
import type { SyscallIntent } from './syscall.ts';

/**
 * Waits for an executor's promise or for `aborted` (which rejects with the abort's reason
 * when `signal` aborts), whichever comes first. If the abort wins, a later failure of the
 * executor is passed to `onLateFailure` (never left unhandled). Racing a promise the caller
 * rejects costs no listener on the signal.
 *
 * @example
 * ```ts
 * const result = await untilAborted(executor.doExecute(intent, context), aborted, signal, (error) => logger.warn({ err: error }));
 * ```
 */
export function untilAborted<T>(
  execution: Promise<T>,
  aborted: Promise<never>,
  signal: AbortSignal,
  onLateFailure: (error: unknown) => void,
): Promise<T> {
  execution.catch((error: unknown) => {
    if (signal.aborted) onLateFailure(error);
  });
  return Promise.race([execution, aborted]);
}

/**
 * An executor's reported usage as whole amounts, or `KEEL_EXECUTOR_FAILED` when it reported
 * something that is not a non-negative number.
 *
 * @example
 * ```ts
 * usage = validUsage(result.usage, intent);
 * ```
 */
export function validUsage(usage: Partial<BudgetAmounts>, intent: SyscallIntent): BudgetAmounts {
  try {
    return toAmounts(usage);
  } catch (error) {
    throw new KeelError(
      'KEEL_EXECUTOR_FAILED',
      `the executor for ${intent.kind} reported invalid usage`,
      {
        cause: error,
        details: { usage: { ...usage } },
      },
    );
  }
}

/**
 * What an execution that threw becomes: `KEEL_TIMEOUT` when the deadline passed, the
 * executor's own KeelError, or `KEEL_EXECUTOR_FAILED` with the reason.
 *
 * @example
 * ```ts
 * failure = executionFailure(error, timedOut, 30_000, intent);
 * ```
 */
export function executionFailure(
  error: unknown,
  timedOut: boolean,
  timeoutMs: number,
  intent: SyscallIntent,
): KeelError {
  if (timedOut && !isKeelError(error)) {
    return new KeelError(
      'KEEL_TIMEOUT',
      `${describeIntent(intent)} took longer than ${timeoutMs} ms`,
      { cause: error },
    );
  }
  if (isKeelError(error)) return error;
  if (error instanceof CanonicalJsonError) {
    return new KeelError(
      'KEEL_EXECUTOR_FAILED',
      `the executor for ${intent.kind} returned a value that is not JSON`,
      {
        cause: error,
      },
    );
  }
  const converted = toKeelError(error, 'KEEL_EXECUTOR_FAILED');
  return converted.code === 'KEEL_EXECUTOR_FAILED'
    ? new KeelError('KEEL_EXECUTOR_FAILED', `the executor for ${intent.kind} failed`, {
        cause: error,
        details: { reason: error instanceof Error ? error.message : String(error) },
      })
    : converted;
}
