import { KeelError } from '../../platform/errors/keel-error.ts';

/**
 * The syscalls a gate has in progress: it refuses new ones once closing, runs at most one
 * call per `(runId, seq)` at a time, and at shutdown gives running calls a grace period
 * before aborting them through the callbacks given to {@link CallTracker.onShutdown}.
 *
 * @example
 * ```ts
 * const calls = new CallTracker();
 * await calls.track(() => calls.exclusive(`${runId}\n${seq}`, () => runTheCall()));
 * await calls.close(10_000);
 * ```
 */
export class CallTracker {
  /** Set once the grace period has ended. */
  #shutdownReason: KeelError | undefined;
  /** How to abort each running call (a Set, not a shared signal's listeners: cheaper per call). */
  readonly #aborts = new Set<(reason: KeelError) => void>();
  readonly #exclusive = new Map<string, Promise<void>>();
  #active = 0;
  #closing = false;
  #idle: (() => void) | undefined;

  /**
   * Has `abort` called with `KEEL_SHUTTING_DOWN` if the call is still running when the grace
   * period ends (at once if it has ended); returns a function to call when the call ends.
   */
  onShutdown(abort: (reason: KeelError) => void): () => void {
    if (this.#shutdownReason !== undefined) {
      abort(this.#shutdownReason);
      return () => undefined;
    }
    this.#aborts.add(abort);
    return () => this.#aborts.delete(abort);
  }

  /** Runs a call, or refuses it with `KEEL_SHUTTING_DOWN` once closing. */
  async track<T>(call: () => Promise<T>): Promise<T> {
    if (this.#closing) {
      throw new KeelError('KEEL_SHUTTING_DOWN', 'the node is stopping and takes no new syscalls');
    }
    this.#active += 1;
    try {
      return await call();
    } finally {
      this.#active -= 1;
      if (this.#active === 0) this.#idle?.();
    }
  }

  /** Runs `call` when no other call with the same key runs (the key is claimed at once). */
  async exclusive<T>(key: string, call: () => Promise<T>): Promise<T> {
    for (
      let running = this.#exclusive.get(key);
      running !== undefined;
      running = this.#exclusive.get(key)
    ) {
      await Promise.allSettled([running]);
    }
    const { promise: done, resolve: finish } = Promise.withResolvers<void>();
    this.#exclusive.set(key, done);
    try {
      return await call();
    } finally {
      this.#exclusive.delete(key);
      finish();
    }
  }

  /**
   * Refuses new calls, waits up to `graceMs` for running ones, then aborts the rest and waits
   * for them to end.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const settled = (): Promise<void> =>
      this.#active === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.#idle = resolve;
          });
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    try {
      await Promise.race([settled(), grace]);
    } finally {
      clearTimeout(timer);
    }
    this.#shutdownReason = new KeelError(
      'KEEL_SHUTTING_DOWN',
      'the node stopped while this syscall ran',
    );
    for (const abort of [...this.#aborts]) abort(this.#shutdownReason);
    this.#aborts.clear();
    await settled();
  }
}
