import { KeelError } from '../errors/keel-error.ts';

/**
 * How a topic delivers its messages.
 *
 * - `'reliable'` (the commands class): ordered, every message to every subscriber that was
 *   subscribed when it was published. A subscriber that falls more than `maxPending` messages
 *   behind is disconnected with `KEEL_BUS_SUBSCRIBER_OVERFLOW`.
 * - `'latest'` (the telemetry class): lossy latest-value. Each subscriber holds at most one
 *   pending value; a newer value overwrites an unconsumed older one.
 *
 * @example
 * ```ts
 * const delivery: TopicDelivery = 'latest';
 * ```
 */
export type TopicDelivery = 'reliable' | 'latest';

/** The longest topic name accepted, in characters. */
export const MAX_TOPIC_NAME_LENGTH = 200;

const TOPIC_DELIVERIES: ReadonlySet<string> = new Set<TopicDelivery>(['reliable', 'latest']);

// Segments of lowercase letters and digits, joined inside a segment by single `-` or `_`, and
// to each other by single dots. Separators are required between repetitions, so the pattern
// cannot backtrack catastrophically. No wildcards: a name is one concrete topic.
const TOPIC_NAME_PATTERN = /^[a-z0-9]+(?:[-_][a-z0-9]+)*(?:\.[a-z0-9]+(?:[-_][a-z0-9]+)*)*$/;

declare const messageType: unique symbol;

/**
 * A named, typed channel of the event bus. Create one with {@link defineTopic}; the type
 * parameter is the message type that `publish` accepts and `subscribe` yields.
 *
 * Buses match topics by `name`: two descriptors with the same name are the same topic.
 *
 * @example
 * ```ts
 * const approvalsRequested: Topic<{ approvalId: string }> = defineTopic(
 *   'approvals.requested',
 *   'reliable',
 * );
 * ```
 */
export interface Topic<T> {
  readonly name: string;
  readonly delivery: TopicDelivery;
  /**
   * Checks and converts a message that arrives from outside the process. Only adapters that
   * cross a process boundary (NATS) call it, on receipt; the in-process adapter never does,
   * because a value typed `T` by the compiler inside the same process is trusted.
   */
  readonly validate?: (value: unknown) => T;
  /** Type-only: carries the message type. Never present at run time. */
  readonly [messageType]: T;
}

/**
 * Optional parts of a topic descriptor.
 *
 * @example
 * ```ts
 * const options: TopicOptions<number> = {
 *   validate: (value) => {
 *     if (typeof value !== 'number') throw new TypeError('expected a number');
 *     return value;
 *   },
 * };
 * ```
 */
export interface TopicOptions<T> {
  /** See {@link Topic.validate}: used only by adapters that receive messages from outside. */
  readonly validate?: (value: unknown) => T;
}

/**
 * Defines a topic: validates the name and returns a frozen descriptor.
 *
 * A name is one or more dot-separated segments of lowercase letters and digits, where `-` and
 * `_` may join letters and digits inside a segment (`approvals.requested`,
 * `hal.telemetry.rover-1`); at most {@link MAX_TOPIC_NAME_LENGTH} characters. Anything else
 * throws `KEEL_INVALID_ARGUMENT`.
 *
 * @example
 * ```ts
 * interface RoverPose { readonly x: number; readonly y: number; readonly heading: number }
 * const roverPose = defineTopic<RoverPose>('hal.telemetry.rover-1', 'latest');
 * await bus.publish(roverPose, { x: 1, y: 2, heading: 90 });
 * ```
 */
export function defineTopic<T>(
  name: string,
  delivery: TopicDelivery,
  options: TopicOptions<T> = {},
): Topic<T> {
  if (typeof name !== 'string') {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'a topic name must be a string', {
      details: { field: 'name', received: typeof name },
    });
  }
  if (name.length === 0 || name.length > MAX_TOPIC_NAME_LENGTH) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `a topic name must have 1 to ${MAX_TOPIC_NAME_LENGTH} characters, got ${name.length}`,
      { details: { field: 'name', length: name.length, maxLength: MAX_TOPIC_NAME_LENGTH } },
    );
  }
  if (!TOPIC_NAME_PATTERN.test(name)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `topic name "${name}" is not dot-separated lowercase segments like "approvals.requested"`,
      { details: { field: 'name', name } },
    );
  }
  if (!TOPIC_DELIVERIES.has(delivery)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `topic "${name}" has delivery "${String(delivery)}"; expected "reliable" or "latest"`,
      { details: { field: 'delivery', name, delivery: String(delivery) } },
    );
  }
  const { validate } = options;
  if (validate !== undefined && typeof validate !== 'function') {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `topic "${name}" has a validate that is not a function`,
      {
        details: { field: 'validate', name, received: typeof validate },
      },
    );
  }
  // The message type exists only for the compiler; the cast adds the type-only marker.
  return Object.freeze({
    name,
    delivery,
    ...(validate === undefined ? {} : { validate }),
  }) as Topic<T>;
}
