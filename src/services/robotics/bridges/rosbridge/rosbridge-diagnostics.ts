import type { Logger } from '../../../../platform/observability/logger.ts';

/** Counters of a {@link RosbridgeClient}, since it was built. */
export interface RosbridgeCounters {
  /** WebSocket connections that opened. */
  readonly connections: number;
  /** Reconnects scheduled (each one a backoff delay). */
  readonly reconnectAttempts: number;
  /** Connections dropped because a ping went unanswered. */
  readonly heartbeatTimeouts: number;
  readonly framesReceived: number;
  /** Messages handed to a subscriber after validation. */
  readonly messagesDelivered: number;
  /** Frames over the size cap, dropped unread. */
  readonly oversizedFrames: number;
  /** Frames that are not JSON. */
  readonly unparseableFrames: number;
  /** JSON frames that are not a rosbridge operation Keel understands the shape of. */
  readonly invalidFrames: number;
  /** Published messages a subscription's schema rejected. */
  readonly invalidMessages: number;
  /** Well-formed frames nobody wanted: other operations, topics without a subscription. */
  readonly ignoredFrames: number;
  /** `status` operations received from the server. */
  readonly statusMessages: number;
  /** Subscriber callbacks that threw (caught and logged). */
  readonly handlerErrors: number;
}

type CounterName = keyof RosbridgeCounters;

export type DropCounterName =
  | 'oversizedFrames'
  | 'unparseableFrames'
  | 'invalidFrames'
  | 'invalidMessages'
  | 'ignoredFrames';

// A flood of bad frames (a LiDAR at 40 Hz with a wrong schema) must not flood the log: the first
// drop of each kind is logged, then every hundredth.
const LOG_EVERY = 100;

/**
 * The counting and logging side of the rosbridge client: what was dropped and why, status
 * operations from the server, and subscriber callbacks that threw.
 *
 * @example
 * ```ts
 * const diagnostics = new RosbridgeDiagnostics(logger);
 * diagnostics.drop('unparseableFrames', { reason: 'Unexpected token' });
 * diagnostics.snapshot().unparseableFrames; // 1
 * ```
 */
export class RosbridgeDiagnostics {
  readonly #logger: Logger;
  readonly #counters: Record<CounterName, number> = {
    connections: 0,
    reconnectAttempts: 0,
    heartbeatTimeouts: 0,
    framesReceived: 0,
    messagesDelivered: 0,
    oversizedFrames: 0,
    unparseableFrames: 0,
    invalidFrames: 0,
    invalidMessages: 0,
    ignoredFrames: 0,
    statusMessages: 0,
    handlerErrors: 0,
  };
  readonly #statusListeners = new Set<(status: { level: string; text: string }) => void>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  snapshot(): RosbridgeCounters {
    return Object.freeze({ ...this.#counters });
  }

  count(name: CounterName): void {
    this.#counters[name] += 1;
  }

  /** Counts a dropped frame or message and logs it (rate-limited per kind). */
  drop(name: DropCounterName, details: Readonly<Record<string, unknown>>): void {
    this.#counters[name] += 1;
    const count = this.#counters[name];
    if (count % LOG_EVERY !== 1) return;
    const fields = { ...details, dropped: name, count };
    if (name === 'ignoredFrames') this.#logger.debug(fields, 'rosbridge frame ignored');
    else this.#logger.warn(fields, 'rosbridge frame dropped');
  }

  /** Runs a subscriber callback; a throw is counted and logged, never propagated. */
  deliver(topic: string, callback: () => void): void {
    try {
      callback();
      this.#counters.messagesDelivered += 1;
    } catch (error) {
      this.#counters.handlerErrors += 1;
      this.#logger.error({ err: error, topic }, 'a rosbridge subscriber threw');
    }
  }

  /** Records a `status` operation from the server. */
  status(level: string, text: string, id: string | undefined): void {
    this.#counters.statusMessages += 1;
    const fields = { level, id, text: text.slice(0, 1_000) };
    if (level === 'error') this.#logger.warn(fields, 'rosbridge reported an error');
    else this.#logger.info(fields, 'rosbridge status');
    for (const listener of [...this.#statusListeners]) {
      try {
        listener({ level, text });
      } catch (error) {
        this.#logger.error({ err: error }, 'a rosbridge status listener threw');
      }
    }
  }

  onStatus(listener: (status: { level: string; text: string }) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }
}
