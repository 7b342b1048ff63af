/**
 * Time as a dependency: code that needs the time receives a Clock, so tests can control it.
 *
 * @example
 * ```ts
 * const clock = systemClock;
 * const deadline = clock.now() + 5_000;
 * ```
 */
export interface Clock {
  /** Wall-clock time in epoch milliseconds. */
  now(): number;
  /** Monotonic time in milliseconds, for measuring durations. */
  monotonic(): number;
}

/**
 * The real clock: `Date.now()` and `performance.now()`.
 */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  monotonic: () => performance.now(),
});

/**
 * A clock that only moves when told to; for tests of expiry and timeouts.
 *
 * @example
 * ```ts
 * const clock = new ManualClock();
 * clock.advance(60_000);
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #monotonic = 0;

  constructor(start: number = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  monotonic(): number {
    return this.#monotonic;
  }

  advance(milliseconds: number): void {
    this.#now += milliseconds;
    this.#monotonic += milliseconds;
  }
}
