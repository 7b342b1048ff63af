import { KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';

/**
 * Monotonic time and cancellable waiting, as a dependency: the model router's breakers, rate
 * limiters and retries wait through a Scheduler, so tests drive them with a
 * {@link ManualScheduler} instead of real time.
 *
 * `sleep` resolves no earlier than `now() + milliseconds`. When the signal aborts (also before
 * the call) it rejects at once with the signal's reason as a KeelError (see
 * {@link abortReasonOf}) and clears its timer. `Infinity` waits until the signal aborts.
 *
 * @example
 * ```ts
 * const started = scheduler.now();
 * await scheduler.sleep(250, signal);
 * scheduler.now() - started; // >= 250
 * ```
 */
export interface Scheduler {
  /** Monotonic time in milliseconds; only differences are meaningful. */
  now(): number;
  sleep(milliseconds: number, signal: AbortSignal): Promise<void>;
}

/**
 * The KeelError a wait rejects with when its signal aborted: `KEEL_TIMEOUT` for an
 * `AbortSignal.timeout`, `KEEL_ABORTED` for a plain abort, the reason itself when it already is
 * a KeelError.
 *
 * @example
 * ```ts
 * if (signal.aborted) throw abortReasonOf(signal);
 * ```
 */
export function abortReasonOf(signal: AbortSignal): KeelError {
  return toKeelError(signal.reason, 'KEEL_ABORTED', 'the wait was aborted');
}

/**
 * Why a sleep cannot start: `KEEL_INVALID_ARGUMENT` for a duration that is negative or NaN, the
 * abort reason for an aborted signal; undefined when it can.
 *
 * @example
 * ```ts
 * const refusal = sleepRefusal(milliseconds, signal);
 * if (refusal !== undefined) return Promise.reject(refusal);
 * ```
 */
export function sleepRefusal(milliseconds: number, signal: AbortSignal): KeelError | undefined {
  if (typeof milliseconds !== 'number' || Number.isNaN(milliseconds) || milliseconds < 0) {
    return new KeelError('KEEL_INVALID_ARGUMENT', 'a sleep needs a duration of 0 ms or more', {
      details: { milliseconds },
    });
  }
  return signal.aborted ? abortReasonOf(signal) : undefined;
}

// setTimeout fires after 1 ms for anything above a signed 32-bit delay, so longer sleeps re-arm.
const LONGEST_TIMER_MS = 2_147_483_647;

/**
 * The real scheduler: `performance.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter({ requestsPerMinute: 60, mode: 'queue' }, systemScheduler);
 * ```
 */
export const systemScheduler: Scheduler = Object.freeze({
  now: () => performance.now(),
  sleep: (milliseconds: number, signal: AbortSignal): Promise<void> => {
    const refusal = sleepRefusal(milliseconds, signal);
    if (refusal !== undefined) return Promise.reject(refusal);
    return new Promise<void>((resolve, reject) => {
      const deadline = performance.now() + milliseconds;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortReasonOf(signal));
      };
      const arm = (): void => {
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          signal.removeEventListener('abort', onAbort);
          resolve();
          return;
        }
        // Timers may fire a fraction of a millisecond early; arm() checks again and re-arms.
        timer = setTimeout(arm, Math.min(Math.ceil(remaining), LONGEST_TIMER_MS));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      arm();
    });
  },
});
