import { KeelError } from '../../errors/keel-error.ts';
import {
  DEFAULT_MAX_PENDING,
  type EventBus,
  type SubscribeOptions,
  type Subscription,
} from '../event-bus.ts';
import type { Topic, TopicDelivery } from '../topic.ts';

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

const INITIAL_QUEUE_CAPACITY = 16;
// A queue that grew for a burst gives its memory back once it is empty again.
const RETAINED_QUEUE_CAPACITY = 1024;

/**
 * A first-in first-out queue on a ring buffer that doubles when full: O(1) push and shift,
 * without the O(n) `Array.prototype.shift` of a plain array.
 */
class RingQueue<T> {
  #slots: Array<T | undefined> = new Array<T | undefined>(INITIAL_QUEUE_CAPACITY);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(value: T): void {
    if (this.#length === this.#slots.length) this.#grow();
    this.#slots[(this.#head + this.#length) & (this.#slots.length - 1)] = value;
    this.#length += 1;
  }

  /** Removes and returns the oldest value; the caller checks `length` first. */
  shift(): T {
    if (this.#length === 0) {
      throw new KeelError('KEEL_INTERNAL', 'shift from an empty ring queue');
    }
    const value = this.#slots[this.#head] as T;
    this.#slots[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#slots.length - 1);
    this.#length -= 1;
    if (this.#length === 0 && this.#slots.length > RETAINED_QUEUE_CAPACITY) this.clear();
    return value;
  }

  clear(): void {
    this.#slots = new Array<T | undefined>(INITIAL_QUEUE_CAPACITY);
    this.#head = 0;
    this.#length = 0;
  }

  #grow(): void {
    // Capacities stay powers of two, so `& (capacity - 1)` is the modulo.
    const grown = new Array<T | undefined>(this.#slots.length * 2);
    for (let index = 0; index < this.#length; index += 1) {
      grown[index] = this.#slots[(this.#head + index) & (this.#slots.length - 1)];
    }
    this.#slots = grown;
    this.#head = 0;
  }
}

/** What the bus sees of a subscription, whatever its message type. */
interface Subscriber {
  readonly topic: Topic<unknown>;
  deliver(message: unknown): void;
  close(): void;
}

interface MemorySubscriptionOptions<T> {
  readonly topic: Topic<T>;
  readonly maxPending: number;
  /** Called once when the subscription stops receiving, so the bus forgets it. */
  readonly onDetach: (subscriber: Subscriber) => void;
}

/**
 * One subscriber: its own queue (reliable) or single slot (latest), and the pulls waiting for
 * a message. It is its own async iterator, so it can be iterated once.
 */
class MemorySubscription<T> implements Subscription<T>, Subscriber, AsyncIterator<T, undefined> {
  readonly topic: Topic<T>;
  readonly #maxPending: number;
  readonly #onDetach: (subscriber: Subscriber) => void;
  readonly #queue = new RingQueue<T>();
  readonly #waiting = new RingQueue<(result: IteratorResult<T, undefined>) => void>();
  #latest: T | undefined;
  #hasLatest = false;
  #dropped = 0;
  #attached = true;
  #ended = false;
  #failure: KeelError | undefined;
  #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.close();

  constructor(options: MemorySubscriptionOptions<T>) {
    this.topic = options.topic;
    this.#maxPending = options.maxPending;
    this.#onDetach = options.onDetach;
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** Ends the subscription when the signal aborts; at once if it already has. */
  listenTo(signal: AbortSignal): void {
    if (signal.aborted) {
      this.close();
      return;
    }
    this.#signal = signal;
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Hands a published message to this subscriber without ever waiting for it. */
  deliver(message: T): void {
    if (!this.#attached) return;
    if (this.#waiting.length > 0) {
      this.#waiting.shift()({ done: false, value: message });
      return;
    }
    if (this.topic.delivery === 'latest') {
      if (this.#hasLatest) this.#dropped += 1;
      this.#latest = message;
      this.#hasLatest = true;
      return;
    }
    if (this.#queue.length >= this.#maxPending) {
      this.#overflow();
      return;
    }
    this.#queue.push(message);
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#failure !== undefined) {
      const failure = this.#failure;
      this.#failure = undefined;
      this.#ended = true;
      return Promise.reject(failure);
    }
    if (this.#hasLatest) {
      const value = this.#latest as T;
      this.#latest = undefined;
      this.#hasLatest = false;
      return Promise.resolve({ done: false, value });
    }
    if (this.#queue.length > 0) return Promise.resolve({ done: false, value: this.#queue.shift() });
    if (this.#ended) return Promise.resolve(DONE);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.close();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterator<T, undefined> {
    return this;
  }

  close(): void {
    // Closing after an overflow discards the overflow error too: the consumer stopped reading.
    this.#failure = undefined;
    if (this.#ended) return;
    this.#ended = true;
    this.#detach();
    this.#latest = undefined;
    this.#hasLatest = false;
    this.#queue.clear();
    while (this.#waiting.length > 0) this.#waiting.shift()(DONE);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #overflow(): void {
    this.#dropped += this.#queue.length + 1;
    this.#queue.clear();
    this.#ended = true;
    this.#failure = new KeelError(
      'KEEL_BUS_SUBSCRIBER_OVERFLOW',
      `a subscriber of topic ${this.topic.name} fell more than ${this.#maxPending} messages behind and was disconnected`,
      {
        details: { topic: this.topic.name, maxPending: this.#maxPending, dropped: this.#dropped },
      },
    );
    this.#detach();
  }

  #detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#signal = undefined;
    this.#onDetach(this);
  }
}

function checkMaxPending(topic: Topic<unknown>, maxPending: number | undefined): number {
  if (maxPending === undefined) return DEFAULT_MAX_PENDING;
  if (!Number.isSafeInteger(maxPending) || maxPending < 1) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `maxPending must be a positive integer, got ${String(maxPending)}`,
      { details: { field: 'maxPending', topic: topic.name, received: String(maxPending) } },
    );
  }
  return maxPending;
}

/**
 * The in-process event bus: the default of a single node, with no service to install.
 *
 * Publishing hands the message to each subscriber's queue synchronously and resolves at once;
 * nothing ever waits for a consumer. Messages are passed by reference, not copied, so
 * publishers and subscribers must treat them as immutable. A topic's `validate` is never called:
 * a value typed by the compiler inside one process is trusted. The bus remembers the delivery
 * class of every topic name it has seen, for the bus's lifetime, to refuse a conflicting one.
 *
 * @example
 * ```ts
 * const bus = new MemoryEventBus();
 * const subscription = bus.subscribe(approvalsRequested);
 * await bus.publish(approvalsRequested, { approvalId: 'apr_0193…' });
 * for await (const request of subscription) {
 *   console.log(request.approvalId);
 *   break;
 * }
 * await bus.close();
 * ```
 */
export class MemoryEventBus implements EventBus {
  readonly #subscribers = new Map<string, Set<Subscriber>>();
  readonly #deliveries = new Map<string, TopicDelivery>();
  readonly #detach = (subscriber: Subscriber): void => {
    const subscribers = this.#subscribers.get(subscriber.topic.name);
    if (subscribers === undefined) return;
    subscribers.delete(subscriber);
    if (subscribers.size === 0) this.#subscribers.delete(subscriber.topic.name);
  };
  #closed = false;

  async publish<T>(topic: Topic<T>, message: NoInfer<T>): Promise<void> {
    this.#checkOpen(topic, 'publish to');
    this.#checkDelivery(topic);
    const subscribers = this.#subscribers.get(topic.name);
    if (subscribers === undefined) return;
    // An overflowing subscriber detaches itself during this loop; deleting the current
    // element of a Set while iterating it is safe.
    for (const subscriber of subscribers) subscriber.deliver(message);
  }

  subscribe<T>(topic: Topic<T>, options: SubscribeOptions = {}): Subscription<T> {
    this.#checkOpen(topic, 'subscribe to');
    this.#checkDelivery(topic);
    const subscription = new MemorySubscription<T>({
      topic,
      maxPending: checkMaxPending(topic, options.maxPending),
      onDetach: this.#detach,
    });
    let subscribers = this.#subscribers.get(topic.name);
    if (subscribers === undefined) {
      subscribers = new Set();
      this.#subscribers.set(topic.name, subscribers);
    }
    subscribers.add(subscription);
    if (options.signal !== undefined) subscription.listenTo(options.signal);
    return subscription;
  }

  /**
   * How many subscriptions currently receive messages, of one topic or of all; for metrics and
   * for tests that prove subscriptions do not leak.
   */
  subscriberCount(topic?: Topic<unknown>): number {
    if (topic !== undefined) return this.#subscribers.get(topic.name)?.size ?? 0;
    let count = 0;
    for (const subscribers of this.#subscribers.values()) count += subscribers.size;
    return count;
  }

  /** Whether `close()` was called; for health reports. */
  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const subscriptions = [...this.#subscribers.values()].flatMap((subscribers) => [
      ...subscribers,
    ]);
    this.#subscribers.clear();
    for (const subscription of subscriptions) subscription.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #checkOpen(topic: Topic<unknown>, action: string): void {
    if (this.#closed) {
      throw new KeelError(
        'KEEL_BUS_CLOSED',
        `cannot ${action} topic ${topic.name}: the event bus is closed`,
        { details: { topic: topic.name } },
      );
    }
  }

  #checkDelivery(topic: Topic<unknown>): void {
    const known = this.#deliveries.get(topic.name);
    if (known === undefined) {
      this.#deliveries.set(topic.name, topic.delivery);
      return;
    }
    if (known !== topic.delivery) {
      throw new KeelError(
        'KEEL_CONFLICT',
        `topic ${topic.name} is a ${known} topic on this bus, not a ${topic.delivery} one`,
        { details: { topic: topic.name, delivery: topic.delivery, knownDelivery: known } },
      );
    }
  }
}

/**
 * Creates an in-process event bus; see {@link MemoryEventBus}.
 *
 * @example
 * ```ts
 * await using bus = createMemoryEventBus();
 * await bus.publish(approvalsRequested, { approvalId: 'apr_0193…' });
 * ```
 */
export function createMemoryEventBus(): MemoryEventBus {
  return new MemoryEventBus();
}
