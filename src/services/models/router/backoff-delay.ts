import { KeelError } from '../../../platform/errors/keel-error.ts';

export interface BackoffPolicy {
  /** The ceiling of the first retry's delay; it doubles with every further retry. */
  readonly baseDelayMs: number;
  /** The largest ceiling, whatever the attempt. */
  readonly maxDelayMs: number;
}

// 2 ** 1023 is the largest finite power of two, so even a base of 0 never meets Infinity (0 × ∞ is NaN).
const LARGEST_FINITE_EXPONENT = 1023;

/**
 * The delay before retry number `attempt` (0 for the first retry): "full jitter",
 * `random() × min(maxDelayMs, baseDelayMs × 2^attempt)`, which spreads the retries of many
 * callers evenly instead of letting them return together.
 *
 * When the provider said when to come back (`retryAfterMs`, from `Retry-After`), the delay is
 * `max(retryAfterMs, jitter)`: the server's time is a lower bound that is honoured as given, even
 * above `maxDelayMs` (whether it fits the call's deadline is the caller's decision). It is not
 * added to the jitter, which would make every retry after a long `Retry-After` wait longer than
 * the server asked and make the total wait depend on two limits; callers that retry against the
 * same provider together are spread by the rate limiter's queue rather than by jitter.
 *
 * @example
 * ```ts
 * const delay = backoffDelay(attempt, { baseDelayMs: 500, maxDelayMs: 20_000 }, Math.random, error.retryAfterMs);
 * await scheduler.sleep(delay, signal);
 * ```
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number,
  retryAfterMs?: number,
): number {
  if (!(Number.isInteger(attempt) && attempt >= 0)) {
    throw invalid('attempt must be an integer of 0 or more', { attempt });
  }
  const { baseDelayMs, maxDelayMs } = policy;
  if (!(Number.isFinite(baseDelayMs) && baseDelayMs >= 0)) {
    throw invalid('baseDelayMs must be a finite number of 0 or more', { baseDelayMs });
  }
  if (!(Number.isFinite(maxDelayMs) && maxDelayMs >= 0)) {
    throw invalid('maxDelayMs must be a finite number of 0 or more', { maxDelayMs });
  }
  if (retryAfterMs !== undefined && !(Number.isFinite(retryAfterMs) && retryAfterMs >= 0)) {
    throw invalid('retryAfterMs must be a finite number of 0 or more', { retryAfterMs });
  }
  const fraction = random();
  if (!(fraction >= 0 && fraction <= 1)) {
    throw invalid('random() must return a number from 0 to 1', { random: fraction });
  }
  const ceiling = Math.min(
    maxDelayMs,
    baseDelayMs * 2 ** Math.min(attempt, LARGEST_FINITE_EXPONENT),
  );
  const jittered = fraction * ceiling;
  return retryAfterMs === undefined ? jittered : Math.max(retryAfterMs, jittered);
}

function invalid(message: string, details: Record<string, unknown>): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, { details });
}
