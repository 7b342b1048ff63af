/**
 * When a crashed worker may restart: exponential backoff from `initialDelayMs` (doubling per
 * restart inside the window, capped at `maxDelayMs`), and at most `budget` restarts per
 * sliding window. Past the budget the agent stays crashed until an operator restarts it.
 *
 * @example
 * ```ts
 * const policy = new RestartPolicy({ initialDelayMs: 200, maxDelayMs: 30_000, budget: 10, windowMs: 60_000 });
 * const decision = policy.next(clock.monotonic()); // { restart: true, delayMs: 200 }
 * ```
 */
export class RestartPolicy {
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #budget: number;
  readonly #windowMs: number;
  readonly #restarts: number[] = [];

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

  /** Records a crash at `now` and says whether to restart, and after how long. */
  next(
    now: number,
  ): { readonly restart: true; readonly delayMs: number } | { readonly restart: false } {
    while (this.#restarts.length > 0 && (this.#restarts[0] ?? now) <= now - this.#windowMs) {
      this.#restarts.shift();
    }
    if (this.#restarts.length >= this.#budget) return { restart: false };
    this.#restarts.push(now);
    const exponent = Math.min(30, this.#restarts.length - 1);
    return {
      restart: true,
      delayMs: Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** exponent),
    };
  }

  /** Restarts inside the current window. */
  recent(now: number): number {
    return this.#restarts.filter((at) => at > now - this.#windowMs).length;
  }

  /** Forgets past crashes (an operator restarted the agent by hand). */
  reset(): void {
    this.#restarts.length = 0;
  }
}
