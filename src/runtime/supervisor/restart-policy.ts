/**
 * When a crashed worker may restart: exponential backoff from `initialDelayMs` (doubling with
 * each crash in a row, capped at `maxDelayMs`), and at most `budget` restarts in a row. A
 * crash ends the row, and is forgiven, only when its worker had run for a whole `windowMs`
 * since it started; a worker that crashes sooner, or never gets as far as starting, uses one
 * restart of the budget however far apart the backoff spreads the crashes. Past the budget
 * the agent stays crashed until an operator restarts it.
 *
 * @example
 * ```ts
 * const policy = new RestartPolicy({ initialDelayMs: 200, maxDelayMs: 30_000, budget: 10, windowMs: 60_000 });
 * policy.started(clock.monotonic()); // the worker said hello
 * const decision = policy.next(clock.monotonic()); // it crashed: { restart: true, delayMs: 200 }
 * ```
 */
export class RestartPolicy {
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #budget: number;
  readonly #windowMs: number;
  /** Restarts in the current row. */
  #inRow = 0;
  /** When the current worker started, if it did since the last crash. */
  #startedAt: number | undefined;

  constructor(options: {
    readonly initialDelayMs: number;
    readonly maxDelayMs: number;
    readonly budget: number;
    readonly windowMs: number;
  }) {
    this.#initialDelayMs = options.initialDelayMs;
    this.#maxDelayMs = options.maxDelayMs;
    this.#budget = options.budget;
    this.#windowMs = options.windowMs;
  }

  /** The worker started (it is ready) at `now`. */
  started(now: number): void {
    this.#startedAt = now;
  }

  /** Records a crash at `now` and says whether to restart, and after how long. */
  next(
    now: number,
  ): { readonly restart: true; readonly delayMs: number } | { readonly restart: false } {
    if (this.#startedAt !== undefined && now - this.#startedAt >= this.#windowMs) this.#inRow = 0;
    this.#startedAt = undefined;
    if (this.#inRow >= this.#budget) return { restart: false };
    this.#inRow += 1;
    const exponent = Math.min(30, this.#inRow - 1);
    return {
      restart: true,
      delayMs: Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** exponent),
    };
  }

  /** Forgets past crashes (an operator restarted the agent by hand). */
  reset(): void {
    this.#inRow = 0;
    this.#startedAt = undefined;
  }
}
