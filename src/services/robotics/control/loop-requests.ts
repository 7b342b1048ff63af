import type { MessagePort } from 'node:worker_threads';
import { isErrorCode } from '../../../platform/errors/error-catalogue.ts';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { FromLoopMessage, ToLoopMessage } from './control-loop-messages.ts';

type Reply = Extract<FromLoopMessage, { type: 'reply' }>;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

/**
 * The brain's requests to the control loop over its message port, each answered by a reply
 * with the same id or failed with `KEEL_TIMEOUT`. A refusal from the loop keeps its error
 * code (`KEEL_ESTOP_ENGAGED`, `KEEL_POLICY_VIOLATION`…); an unknown code is a `KEEL_HAL_FAULT`.
 *
 * @example
 * ```ts
 * const requests = new LoopRequests(port, 2000);
 * const joints = await requests.send({ type: 'arm', id: requests.reserve(), epoch, x, y, z });
 * ```
 */
export class LoopRequests {
  readonly #port: MessagePort;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(port: MessagePort, timeoutMs: number) {
    this.#port = port;
    this.#timeoutMs = timeoutMs;
  }

  /** The id of the next request. */
  reserve(): number {
    const id = this.#nextId;
    this.#nextId += 1;
    return id;
  }

  send(message: ToLoopMessage): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(new KeelError('KEEL_HAL_FAULT', 'the control loop is not running'));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(message.id);
        reject(
          new KeelError('KEEL_TIMEOUT', `the control loop did not answer ${message.type} in time`),
        );
      }, this.#timeoutMs);
      this.#pending.set(message.id, { resolve, reject, timer });
      this.#port.postMessage(message);
    });
  }

  /** Settles the request a reply answers. */
  settle(reply: Reply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.ok) {
      pending.resolve(reply.value);
      return;
    }
    const code = isErrorCode(reply.error.code) ? reply.error.code : 'KEEL_HAL_FAULT';
    pending.reject(new KeelError(code, reply.error.message));
  }

  /** Fails every waiting request (the loop is gone) and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new KeelError('KEEL_HAL_FAULT', 'the control loop stopped'));
    }
    this.#pending.clear();
  }
}
