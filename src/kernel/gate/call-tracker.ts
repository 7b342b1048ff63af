import { KeelError } from '../../platform/errors/keel-error.ts';

/**
 * The syscalls a gate has in progress: it refuses new ones once closing, runs at most one
 * call per `(runId, seq)` at a time, and at shutdown gives running calls a grace period
 * before aborting them through {@link CallTracker.shutdownSignal}.
 *
 * @example
 * ```ts
 * const calls = new CallTracker();
 * await calls.track(() => calls.exclusive(`${runId}\n${seq}`, () => runTheCall(calls.shutdownSignal)));
 * await calls.close(10_000);
 * ```
 */
export class CallTracker {
  readonly #shutdown = new AbortController();
  readonly #exclusive = new Map<string, Promise<void>>();
  #active = 0;
  #closing = false;
  #idle: (() => void) | undefined;

  /** Aborts, with `KEEL_SHUTTING_DOWN`, the calls still running when the grace period ends. */
  get shutdownSignal(): AbortSignal {
    return this.#shutdown.signal;
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
    this.#shutdown.abort(
      new KeelError('KEEL_SHUTTING_DOWN', 'the node stopped while this syscall ran'),
    );
    await settled();
  }
}
