import type { z } from 'zod';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { RosbridgeDiagnostics } from './rosbridge-diagnostics.ts';

/** One rosbridge v2 operation as sent on the wire (before `JSON.stringify`). */
export type RosbridgeOperation = Readonly<Record<string, unknown>> & { readonly op: string };

export interface RosbridgeSubscribeOptions<Message> {
  readonly topic: string;
  /** The ROS message type, e.g. `sensor_msgs/LaserScan`. */
  readonly type: string;
  /** Validates and converts each message; a message it rejects is dropped and counted. */
  readonly schema: z.ZodType<Message>;
  readonly onMessage: (message: Message) => void;
  /** Asks the server to send at most one message per this many milliseconds. */
  readonly throttleRateMs?: number;
  /** How many messages the server may queue for this subscription. */
  readonly queueLength?: number;
}

interface Subscription {
  readonly topic: string;
  readonly type: string;
  readonly operation: RosbridgeOperation;
  readonly deliver: (message: unknown) => void;
}

/**
 * What a rosbridge client has asked the server for — advertised topics and subscriptions — so it
 * can be asked for again on every new connection (rosbridge forgets a client's topics when its
 * socket closes). Also routes incoming messages to the subscriptions of their topic.
 *
 * @example
 * ```ts
 * const registry = new RosbridgeTopicRegistry(diagnostics);
 * send(registry.advertise('/cmd_vel', 'geometry_msgs/Twist'));
 * for (const operation of registry.replay()) send(operation);
 * ```
 */
export class RosbridgeTopicRegistry {
  readonly #diagnostics: RosbridgeDiagnostics;
  readonly #advertised = new Map<string, RosbridgeOperation & { readonly type: string }>();
  readonly #subscriptions = new Map<string, Subscription>();
  #nextId = 1;

  constructor(diagnostics: RosbridgeDiagnostics) {
    this.#diagnostics = diagnostics;
  }

  get advertisedCount(): number {
    return this.#advertised.size;
  }

  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  isAdvertised(topic: string): boolean {
    return this.#advertised.has(topic);
  }

  /** Records an advertisement; returns the operation to send, or undefined if it exists. */
  advertise(topic: string, type: string): RosbridgeOperation | undefined {
    checkName('topic', topic);
    checkName('type', type);
    const existing = this.#advertised.get(topic);
    if (existing !== undefined) {
      if (existing.type === type) return undefined;
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `topic ${topic} is advertised with another type`,
        {
          details: { topic, type, advertisedType: existing.type },
        },
      );
    }
    const operation = { op: 'advertise', id: this.createId('advertise', topic), topic, type };
    this.#advertised.set(topic, operation);
    return operation;
  }

  /** Forgets an advertisement; returns the operation to send, or undefined if there was none. */
  unadvertise(topic: string): RosbridgeOperation | undefined {
    const existing = this.#advertised.get(topic);
    if (existing === undefined) return undefined;
    this.#advertised.delete(topic);
    return { op: 'unadvertise', id: existing.id, topic };
  }

  /** Records a subscription; returns its id and the operation to send. */
  subscribe<Message>(options: RosbridgeSubscribeOptions<Message>): {
    readonly id: string;
    readonly operation: RosbridgeOperation;
  } {
    const { topic, type, schema, onMessage } = options;
    checkName('topic', topic);
    checkName('type', type);
    for (const other of this.#subscriptions.values()) {
      if (other.topic === topic && other.type !== type) {
        throw new KeelError('KEEL_INVALID_ARGUMENT', `topic ${topic} has another type`, {
          details: { topic, type, subscribedType: other.type },
        });
      }
    }
    const id = this.createId('subscribe', topic);
    const operation: RosbridgeOperation = {
      op: 'subscribe',
      id,
      topic,
      type,
      ...(options.throttleRateMs === undefined ? {} : { throttle_rate: options.throttleRateMs }),
      ...(options.queueLength === undefined ? {} : { queue_length: options.queueLength }),
    };
    const deliver = (message: unknown): void => {
      const parsed = schema.safeParse(message);
      if (!parsed.success) {
        this.#diagnostics.drop('invalidMessages', { topic, reason: parsed.error.message });
        return;
      }
      this.#diagnostics.deliver(topic, () => onMessage(parsed.data));
    };
    this.#subscriptions.set(id, { topic, type, operation, deliver });
    return { id, operation };
  }

  /** Forgets a subscription; returns the operation to send, or undefined if it was gone. */
  unsubscribe(id: string): RosbridgeOperation | undefined {
    const subscription = this.#subscriptions.get(id);
    if (subscription === undefined) return undefined;
    this.#subscriptions.delete(id);
    return { op: 'unsubscribe', id, topic: subscription.topic };
  }

  /** Every advertisement, then every subscription, to send on a new connection. */
  replay(): RosbridgeOperation[] {
    return [
      ...this.#advertised.values(),
      ...[...this.#subscriptions.values()].map((subscription) => subscription.operation),
    ];
  }

  /** Hands a published message to every subscription of its topic; false if there is none. */
  dispatch(topic: string, message: unknown): boolean {
    let delivered = false;
    for (const subscription of [...this.#subscriptions.values()]) {
      if (subscription.topic !== topic) continue;
      delivered = true;
      subscription.deliver(message);
    }
    return delivered;
  }

  /** A fresh operation id, unique within this client: `keel:<op>:<topic>:<n>`. */
  createId(op: string, topic: string): string {
    const id = `keel:${op}:${topic}:${this.#nextId}`;
    this.#nextId += 1;
    return id;
  }
}

function checkName(field: 'topic' | 'type', value: string): void {
  if (!/^[A-Za-z0-9_/~]{1,256}$/.test(value) || value.includes('//')) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `not a valid ROS ${field} name: ${value}`, {
      details: { [field]: value },
    });
  }
}
