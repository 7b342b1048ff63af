import { isKeelError, KeelError } from '../../../../platform/errors/keel-error.ts';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: KeelError) => void;
}

/**
 * Sends a robot's state so that the broker ends up with the newest one, without a backlog:
 * one state publish is in flight at a time, and while offline (or while one is in flight)
 * each new state replaces the one waiting. A caller's promise settles when its state — or a
 * newer state that replaced it — has been acknowledged.
 *
 * @example
 * ```ts
 * const states = new NewestStateSender((payload) => publish(stateTopic, payload), () => online);
 * await states.offer(Buffer.from('{"mode":"idle"}'));
 * ```
 */
export class NewestStateSender {
  readonly #send: (payload: Buffer) => Promise<void>;
  readonly #canSend: () => boolean;
  #waiting: { payload: Buffer; waiters: Waiter[] } | undefined;
  /** The waiters of the state on its way to the broker, if one is. */
  #inFlight: Waiter[] | undefined;

  constructor(send: (payload: Buffer) => Promise<void>, canSend: () => boolean) {
    this.#send = send;
    this.#canSend = canSend;
  }

  /** Makes `payload` the newest state; resolves once it (or a newer one) is acknowledged. */
  offer(payload: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiters = this.#waiting?.waiters ?? [];
      waiters.push({ resolve, reject });
      this.#waiting = { payload, waiters };
      this.flush();
    });
  }

  /** Sends the waiting state if it can be sent now; call it when the connection comes back. */
  flush(): void {
    const waiting = this.#waiting;
    if (this.#inFlight !== undefined || waiting === undefined || !this.#canSend()) return;
    this.#waiting = undefined;
    this.#inFlight = waiting.waiters;
    void this.#send(waiting.payload)
      .then(
        () => {
          for (const waiter of waiting.waiters) waiter.resolve();
        },
        (error: unknown) => {
          const failure = isKeelError(error)
            ? error
            : new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the state was not published', {
                cause: error,
              });
          for (const waiter of waiting.waiters) waiter.reject(failure);
        },
      )
      .finally(() => {
        this.#inFlight = undefined;
        this.flush();
      });
  }

  /** Gives up on every state not yet acknowledged; their callers get `error`. */
  abandon(error: KeelError): void {
    for (const waiter of [...(this.#inFlight ?? []), ...(this.#waiting?.waiters ?? [])]) {
      waiter.reject(error);
    }
    this.#waiting = undefined;
  }
}
