import type { Topic } from './topic.ts';

/**
 * How many messages a subscriber of a reliable topic may have waiting before it is
 * disconnected with `KEEL_BUS_SUBSCRIBER_OVERFLOW`, unless it asks for another limit.
 *
 * @example
 * ```ts
 * bus.subscribe(commands, { maxPending: DEFAULT_MAX_PENDING * 2 });
 * ```
 */
export const DEFAULT_MAX_PENDING = 10_000;

/**
 * Options of {@link EventBus.subscribe}.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * const options: SubscribeOptions = { maxPending: 1_000, signal: controller.signal };
 * ```
 */
export interface SubscribeOptions {
  /**
   * Reliable topics only (latest-value topics always hold at most one value): how many
   * messages may wait for this subscriber. A positive integer; default
   * {@link DEFAULT_MAX_PENDING}. Exactly `maxPending` waiting messages are fine; one more
   * disconnects the subscriber (see {@link Subscription}).
   */
  readonly maxPending?: number;
  /** Aborting ends the iteration cleanly, like {@link Subscription.close}. */
  readonly signal?: AbortSignal;
}

/**
 * One subscriber's stream of messages of one topic: iterate it once with `for await`.
 *
 * It ends, and the loop finishes normally, when the subscriber calls `close()` or leaves the
 * loop (`break`, `return`, a throw in the loop body), when its `signal` aborts, or when the bus
 * closes. Messages still waiting for it are then discarded: the bus is not durable.
 *
 * Overflow (reliable topics): when a message arrives while `maxPending` messages are already
 * waiting, the subscriber is disconnected at once. The waiting messages are discarded (a
 * reliable consumer that missed one message must resynchronise anyway, and serving stale
 * messages first would only delay that), and the next pull throws a `KeelError`
 * `KEEL_BUS_SUBSCRIBER_OVERFLOW` with `details.topic` and `details.maxPending`. After that the
 * iteration is over. Other subscribers and the publisher are not affected.
 *
 * @example
 * ```ts
 * const subscription = bus.subscribe(approvalsRequested, { signal });
 * try {
 *   for await (const request of subscription) await notifyOperator(request);
 * } catch (error) {
 *   if (isKeelError(error) && error.code === 'KEEL_BUS_SUBSCRIBER_OVERFLOW') await resynchronise();
 *   else throw error;
 * }
 * ```
 */
export interface Subscription<T> extends AsyncIterable<T>, Disposable {
  readonly topic: Topic<T>;
  /**
   * Messages published while this subscriber was subscribed that it will never receive: on a
   * latest-value topic, the unconsumed values that newer ones overwrote; on a reliable topic,
   * the messages discarded when it overflowed (the waiting ones and the one that did not fit).
   */
  readonly dropped: number;
  /**
   * Unsubscribes and ends the iteration; a pending pull finishes. After an overflow it also
   * discards the overflow error that the next pull would have thrown: the subscriber has
   * stopped reading. Closing the bus does not discard it. Idempotent.
   */
  close(): void;
}

/**
 * The event bus port: typed publish/subscribe between the parts of a node (and, with the NATS
 * adapter, between nodes). Adapters (`memory/`, later `nats/`) implement it and pass the shared
 * contract suite in `event-bus.contract.ts`.
 *
 * A publisher never waits for subscribers: `publish` resolves as soon as the bus has accepted
 * the message, so a slow or stalled subscriber can neither block nor slow a publisher. Each
 * subscriber receives only messages published after it subscribed, and only those of its own
 * topic (names match exactly; there are no wildcards). A topic name carries one delivery class
 * per bus: using the same name with the other class throws `KEEL_CONFLICT`.
 *
 * @example
 * ```ts
 * const bus: EventBus = createMemoryEventBus();
 * const subscription = bus.subscribe(approvalsRequested);
 * await bus.publish(approvalsRequested, { approvalId: 'apr_0193…' });
 * for await (const request of subscription) { … }
 * await bus.close();
 * ```
 */
export interface EventBus extends AsyncDisposable {
  /**
   * Publishes a message to every current subscriber of the topic; resolves once the bus has
   * accepted it. Rejects with `KEEL_BUS_CLOSED` after `close()`.
   */
  publish<T>(topic: Topic<T>, message: NoInfer<T>): Promise<void>;
  /**
   * Subscribes to the messages published to the topic from now on. Throws `KEEL_BUS_CLOSED`
   * after `close()`, and `KEEL_INVALID_ARGUMENT` for a `maxPending` that is not a positive
   * integer.
   */
  subscribe<T>(topic: Topic<T>, options?: SubscribeOptions): Subscription<T>;
  /**
   * Refuses further publishing and subscribing and ends every subscription (their `for await`
   * loops finish normally). Idempotent; `[Symbol.asyncDispose]` does the same.
   */
  close(): Promise<void>;
}
