/**
 * The shared contract of the event bus port. Every adapter runs this same suite (see
 * `memory/memory-event-bus.test.ts`); a NATS JetStream adapter must pass it unchanged, so it
 * works only through the port and never assumes that delivery is synchronous: whenever it
 * needs a message to have arrived, it pulls it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { rejectsWithCode, throwsWithCode } from '../../../test/support/assertions.ts';
import type { EventBus, Subscription } from './event-bus.ts';
import { defineTopic, type Topic, type TopicDelivery } from './topic.ts';

/** Opens a fresh, empty bus for one test; the suite closes it afterwards. */
export type EventBusFactory = () => Promise<EventBus>;

/** A topic name of its own for every test, so adapters on a shared server cannot interfere. */
function uniqueTopic<T>(name: string, delivery: TopicDelivery): Topic<T> {
  return defineTopic<T>(`contract.${randomBytes(6).toString('hex')}.${name}`, delivery);
}

function range(count: number, start = 0): number[] {
  return Array.from({ length: count }, (_, index) => start + index);
}

/** Pulls exactly `count` messages, failing if the iteration ends first. */
async function take<T>(iterator: AsyncIterator<T>, count: number): Promise<T[]> {
  const values: T[] = [];
  while (values.length < count) {
    const result = await iterator.next();
    assert.equal(result.done, false, `the iteration ended after ${values.length} of ${count}`);
    values.push(result.value);
  }
  return values;
}

/** Consumes with `for await` until the iteration ends, reporting each message as it arrives. */
async function consume<T>(
  subscription: Subscription<T>,
  onMessage: (received: readonly T[]) => void = () => undefined,
): Promise<T[]> {
  const received: T[] = [];
  for await (const message of subscription) {
    received.push(message);
    onMessage(received);
  }
  return received;
}

/** Resolves once a consumer started with {@link consume} has received `count` messages. */
function receivedCount(count: number) {
  const reached = Promise.withResolvers<void>();
  return {
    reached: reached.promise,
    onMessage: (received: readonly unknown[]) => {
      if (received.length === count) reached.resolve();
    },
  };
}

/**
 * Pulls from a latest-value subscription until `last` arrives, checking that every value is
 * newer than the one before (values are published in increasing order). Returns what arrived.
 */
async function pullUntil(iterator: AsyncIterator<number>, last: number): Promise<number[]> {
  const received: number[] = [];
  for (;;) {
    const result = await iterator.next();
    assert.equal(result.done, false, `the iteration ended before ${last} arrived`);
    const previous = received.at(-1);
    if (previous !== undefined) {
      assert.ok(result.value > previous, `received ${result.value} after ${previous}`);
    }
    received.push(result.value);
    if (result.value === last) return received;
  }
}

/**
 * Registers the event bus contract suite for one adapter.
 *
 * @example
 * ```ts
 * describeEventBusContract('memory', async () => createMemoryEventBus());
 * ```
 */
export function describeEventBusContract(adapterName: string, factory: EventBusFactory): void {
  describe(`event bus contract: ${adapterName}`, () => {
    let bus: EventBus;

    beforeEach(async () => {
      bus = await factory();
    });

    afterEach(async () => {
      await bus.close();
    });

    describe('publishing', () => {
      it('accepts a message for a topic that nobody subscribes to', async () => {
        const topic = uniqueTopic<string>('unheard', 'reliable');
        await bus.publish(topic, 'nobody listens');
        const subscription = bus.subscribe(topic);
        await bus.publish(topic, 'heard');
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), ['heard']);
      });

      it('delivers structured messages intact', async () => {
        const topic = uniqueTopic<{ id: string; tags: string[]; nested: { n: number | null } }>(
          'structured',
          'reliable',
        );
        const message = { id: 'apr_1', tags: ['a', 'é✓'], nested: { n: null } };
        const subscription = bus.subscribe(topic);
        await bus.publish(topic, message);
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), [message]);
      });

      it('delivers messages of a topic only to subscribers of exactly that topic', async () => {
        const orders = defineTopic<string>(
          `contract.${randomBytes(6).toString('hex')}.orders`,
          'reliable',
        );
        const longer = defineTopic<string>(`${orders.name}.created`, 'reliable');
        const other = uniqueTopic<string>('invoices', 'reliable');
        const ordersSubscription = bus.subscribe(orders);
        const longerSubscription = bus.subscribe(longer);
        const otherSubscription = bus.subscribe(other);
        await bus.publish(orders, 'order 1');
        await bus.publish(longer, 'created 1');
        await bus.publish(other, 'invoice 1');
        await bus.publish(orders, 'order 2');
        await bus.publish(longer, 'created 2');
        await bus.publish(other, 'invoice 2');
        assert.deepEqual(await take(ordersSubscription[Symbol.asyncIterator](), 2), [
          'order 1',
          'order 2',
        ]);
        assert.deepEqual(await take(longerSubscription[Symbol.asyncIterator](), 2), [
          'created 1',
          'created 2',
        ]);
        assert.deepEqual(await take(otherSubscription[Symbol.asyncIterator](), 2), [
          'invoice 1',
          'invoice 2',
        ]);
      });

      it('treats descriptors with the same name as the same topic', async () => {
        const topic = uniqueTopic<number>('shared', 'reliable');
        const twin = defineTopic<number>(topic.name, 'reliable');
        const subscription = bus.subscribe(twin);
        await bus.publish(topic, 7);
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), [7]);
      });

      it('refuses a topic name used with the other delivery class', async () => {
        const reliable = uniqueTopic<number>('mixed', 'reliable');
        const latest = defineTopic<number>(reliable.name, 'latest');
        bus.subscribe(reliable);
        throwsWithCode(() => bus.subscribe(latest), 'KEEL_CONFLICT');
        await rejectsWithCode(bus.publish(latest, 1), 'KEEL_CONFLICT');
      });

      it('refuses a maxPending that is not a positive integer', () => {
        const topic = uniqueTopic<number>('limits', 'reliable');
        for (const maxPending of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          throwsWithCode(() => bus.subscribe(topic, { maxPending }), 'KEEL_INVALID_ARGUMENT');
        }
      });
    });

    describe('publishers never wait for subscribers', () => {
      it('lets a publisher finish 100,000 messages while a reliable subscriber never pulls', async () => {
        const topic = uniqueTopic<number>('stalled-reliable', 'reliable');
        const stalled = bus.subscribe(topic, { maxPending: 100_000 });
        for (let index = 0; index < 100_000; index += 1) await bus.publish(topic, index);
        // Reaching this line is the proof: every publish resolved while nothing was pulled.
        assert.deepEqual(await take(stalled[Symbol.asyncIterator](), 100_000), range(100_000));
        assert.equal(stalled.dropped, 0);
      });

      it('lets a publisher finish 100,000 messages while a latest-value subscriber never pulls', async () => {
        const topic = uniqueTopic<number>('stalled-latest', 'latest');
        const stalled = bus.subscribe(topic);
        for (let index = 0; index < 100_000; index += 1) await bus.publish(topic, index);
        const received = await pullUntil(stalled[Symbol.asyncIterator](), 99_999);
        assert.equal(received.length + stalled.dropped, 100_000);
      });

      it('lets a publisher finish when a stalled subscriber overflows', async () => {
        const topic = uniqueTopic<number>('stalled-overflow', 'reliable');
        const stalled = bus.subscribe(topic);
        for (let index = 0; index < 100_000; index += 1) await bus.publish(topic, index);
        await rejectsWithCode(consume(stalled), 'KEEL_BUS_SUBSCRIBER_OVERFLOW');
      });
    });

    describe('reliable delivery', () => {
      it('delivers every message to every subscriber in publish order', async () => {
        const topic = uniqueTopic<number>('commands', 'reliable');
        const first = bus.subscribe(topic);
        const second = bus.subscribe(topic);
        for (const index of range(1_000)) await bus.publish(topic, index);
        assert.deepEqual(await take(first[Symbol.asyncIterator](), 1_000), range(1_000));
        assert.deepEqual(await take(second[Symbol.asyncIterator](), 1_000), range(1_000));
        assert.equal(first.dropped, 0);
        assert.equal(second.dropped, 0);
      });

      it('keeps publish order when pulls interleave with publishes', async () => {
        const topic = uniqueTopic<number>('interleaved', 'reliable');
        const iterator = bus.subscribe(topic, { maxPending: 200 })[Symbol.asyncIterator]();
        const received: number[] = [];
        let published = 0;
        for (let round = 0; round < 50; round += 1) {
          for (let count = 0; count < 7; count += 1) await bus.publish(topic, published++);
          received.push(...(await take(iterator, 5)));
        }
        received.push(...(await take(iterator, published - received.length)));
        assert.deepEqual(received, range(published));
      });

      it('delivers to a pull that is already waiting', async () => {
        const topic = uniqueTopic<string>('waiting', 'reliable');
        const iterator = bus.subscribe(topic)[Symbol.asyncIterator]();
        const pending = iterator.next();
        await bus.publish(topic, 'arrives');
        assert.deepEqual(await pending, { done: false, value: 'arrives' });
      });

      it('delivers only the messages published after subscribing', async () => {
        const topic = uniqueTopic<string>('late-joiner', 'reliable');
        await bus.publish(topic, 'before');
        const subscription = bus.subscribe(topic);
        await bus.publish(topic, 'after');
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), ['after']);
      });

      it('keeps a subscriber with exactly maxPending waiting messages connected', async () => {
        const topic = uniqueTopic<number>('at-limit', 'reliable');
        const subscription = bus.subscribe(topic, { maxPending: 5 });
        for (const index of range(5)) await bus.publish(topic, index);
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 5), range(5));
        await bus.publish(topic, 5);
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), [5]);
        assert.equal(subscription.dropped, 0);
      });

      it('disconnects only the subscriber that overflows; others and the publisher go on', async () => {
        const topic = uniqueTopic<number>('overflow', 'reliable');
        const slow = bus.subscribe(topic, { maxPending: 10 });
        const fast = bus.subscribe(topic);
        const fastIterator = fast[Symbol.asyncIterator]();
        for (const index of range(50)) await bus.publish(topic, index);
        assert.deepEqual(await take(fastIterator, 50), range(50));

        const error = await rejectsWithCode(
          slow[Symbol.asyncIterator]().next(),
          'KEEL_BUS_SUBSCRIBER_OVERFLOW',
        );
        assert.equal(error.details.topic, topic.name);
        assert.equal(error.details.maxPending, 10);

        await bus.publish(topic, 50);
        assert.deepEqual(await take(fastIterator, 1), [50]);
        assert.equal(fast.dropped, 0);
        const resubscribed = bus.subscribe(topic, { maxPending: 10 });
        await bus.publish(topic, 51);
        assert.deepEqual(await take(resubscribed[Symbol.asyncIterator](), 1), [51]);
      });

      it('discards the waiting messages on overflow and throws on the next pull', async () => {
        const topic = uniqueTopic<number>('overflow-discard', 'reliable');
        const subscription = bus.subscribe(topic, { maxPending: 3 });
        for (const index of range(4)) await bus.publish(topic, index);
        const iterator = subscription[Symbol.asyncIterator]();
        await rejectsWithCode(iterator.next(), 'KEEL_BUS_SUBSCRIBER_OVERFLOW');
        assert.equal(subscription.dropped, 4);
        await bus.publish(topic, 4);
        assert.deepEqual(await iterator.next(), { done: true, value: undefined });
        assert.equal(subscription.dropped, 4);
      });

      it('ends a for-await loop with the overflow error', async () => {
        const topic = uniqueTopic<number>('overflow-loop', 'reliable');
        const subscription = bus.subscribe(topic, { maxPending: 2 });
        for (const index of range(3)) await bus.publish(topic, index);
        await rejectsWithCode(consume(subscription), 'KEEL_BUS_SUBSCRIBER_OVERFLOW');
      });

      it('ends without the overflow error when the subscriber closes first', async () => {
        const topic = uniqueTopic<number>('overflow-closed', 'reliable');
        const subscription = bus.subscribe(topic, { maxPending: 1 });
        await bus.publish(topic, 0);
        await bus.publish(topic, 1);
        subscription.close();
        assert.deepEqual(await consume(subscription), []);
      });

      it('still reports an overflow that happened before the bus closed', async () => {
        const topic = uniqueTopic<number>('overflow-close', 'reliable');
        const subscription = bus.subscribe(topic, { maxPending: 1 });
        await bus.publish(topic, 0);
        await bus.publish(topic, 1);
        await bus.close();
        await rejectsWithCode(consume(subscription), 'KEEL_BUS_SUBSCRIBER_OVERFLOW');
      });
    });

    describe('latest-value delivery', () => {
      it('gives a late consumer the newest value and counts overwritten ones as dropped', async () => {
        const topic = uniqueTopic<number>('pose', 'latest');
        const subscription = bus.subscribe(topic);
        for (const value of range(5, 1)) await bus.publish(topic, value);
        const received = await pullUntil(subscription[Symbol.asyncIterator](), 5);
        assert.equal(received.length + subscription.dropped, 5);
        assert.ok(subscription.dropped > 0, 'overwritten values are counted');
      });

      it('never delivers the same value twice', async () => {
        const topic = uniqueTopic<number>('pose-once', 'latest');
        const subscription = bus.subscribe(topic);
        const iterator = subscription[Symbol.asyncIterator]();
        await bus.publish(topic, 1);
        assert.deepEqual(await take(iterator, 1), [1]);
        const pending = iterator.next();
        await bus.publish(topic, 2);
        assert.deepEqual(await pending, { done: false, value: 2 });
        const next = iterator.next();
        await bus.publish(topic, 3);
        assert.deepEqual(await next, { done: false, value: 3 });
        assert.equal(subscription.dropped, 0);
      });

      it('keeps a pending value for each subscriber separately', async () => {
        const topic = uniqueTopic<number>('pose-fanout', 'latest');
        const first = bus.subscribe(topic);
        const second = bus.subscribe(topic);
        await bus.publish(topic, 1);
        assert.deepEqual(await take(first[Symbol.asyncIterator](), 1), [1]);
        assert.deepEqual(await take(second[Symbol.asyncIterator](), 1), [1]);
        assert.equal(first.dropped + second.dropped, 0);
      });

      it('delivers only values published after subscribing', async () => {
        const topic = uniqueTopic<number>('pose-late', 'latest');
        await bus.publish(topic, 1);
        const subscription = bus.subscribe(topic);
        await bus.publish(topic, 2);
        assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), [2]);
        assert.equal(subscription.dropped, 0);
      });
    });

    describe('ending a subscription', () => {
      it('unsubscribes when a for-await loop breaks out', async () => {
        const topic = uniqueTopic<number>('break', 'latest');
        const subscription = bus.subscribe(topic);
        await bus.publish(topic, 1);
        for await (const value of subscription) {
          assert.equal(value, 1);
          break;
        }
        for (const value of range(3, 2)) await bus.publish(topic, value);
        assert.equal(subscription.dropped, 0, 'no value reached the subscriber after it left');
        assert.deepEqual(await subscription[Symbol.asyncIterator]().next(), {
          done: true,
          value: undefined,
        });
      });

      it('ends the loop normally and finishes a waiting pull on close()', async () => {
        const topic = uniqueTopic<number>('close-one', 'reliable');
        const subscription = bus.subscribe(topic);
        const progress = receivedCount(2);
        const consumer = consume(subscription, progress.onMessage);
        await bus.publish(topic, 1);
        await bus.publish(topic, 2);
        await progress.reached;
        subscription.close();
        assert.deepEqual(await consumer, [1, 2]);
      });

      it('closes idempotently, leaving other subscribers of the topic untouched', async () => {
        const topic = uniqueTopic<number>('close-other', 'reliable');
        const closed = bus.subscribe(topic);
        const open = bus.subscribe(topic);
        closed.close();
        closed.close();
        await bus.publish(topic, 1);
        assert.deepEqual(await take(open[Symbol.asyncIterator](), 1), [1]);
        assert.deepEqual(await closed[Symbol.asyncIterator]().next(), {
          done: true,
          value: undefined,
        });
      });

      it('closes when disposed', async () => {
        const topic = uniqueTopic<number>('dispose', 'reliable');
        let iterator: AsyncIterator<number> | undefined;
        {
          using subscription = bus.subscribe(topic);
          iterator = subscription[Symbol.asyncIterator]();
        }
        await bus.publish(topic, 1);
        assert.deepEqual(await iterator.next(), { done: true, value: undefined });
      });

      it('ends the loop normally when the signal aborts', async () => {
        const topic = uniqueTopic<number>('abort', 'latest');
        const controller = new AbortController();
        const subscription = bus.subscribe(topic, { signal: controller.signal });
        const progress = receivedCount(1);
        const consumer = consume(subscription, progress.onMessage);
        await bus.publish(topic, 1);
        await progress.reached;
        controller.abort();
        assert.deepEqual(await consumer, [1]);
        await bus.publish(topic, 2);
        await bus.publish(topic, 3);
        assert.equal(subscription.dropped, 0, 'no value reached the subscriber after the abort');
      });

      it('ends at once for a signal that has already aborted', async () => {
        const topic = uniqueTopic<number>('aborted', 'reliable');
        const subscription = bus.subscribe(topic, { signal: AbortSignal.abort() });
        await bus.publish(topic, 1);
        assert.deepEqual(await consume(subscription), []);
      });
    });

    describe('closing the bus', () => {
      it('ends every subscription and its for-await loop normally', async () => {
        const commands = uniqueTopic<number>('close-commands', 'reliable');
        const telemetry = uniqueTopic<number>('close-telemetry', 'latest');
        const commandProgress = receivedCount(2);
        const telemetryProgress = receivedCount(1);
        const commandConsumer = consume(bus.subscribe(commands), commandProgress.onMessage);
        const telemetryConsumer = consume(bus.subscribe(telemetry), telemetryProgress.onMessage);
        const idle = bus.subscribe(commands)[Symbol.asyncIterator]();
        const idlePull = take(idle, 2);
        await bus.publish(commands, 1);
        await bus.publish(commands, 2);
        await bus.publish(telemetry, 10);
        await commandProgress.reached;
        await telemetryProgress.reached;
        assert.deepEqual(await idlePull, [1, 2]);
        const waitingPull = idle.next();

        await bus.close();
        assert.deepEqual(await commandConsumer, [1, 2]);
        assert.deepEqual(await telemetryConsumer, [10]);
        assert.deepEqual(await waitingPull, { done: true, value: undefined });
      });

      it('rejects publish after close with KEEL_BUS_CLOSED', async () => {
        const topic = uniqueTopic<number>('closed-publish', 'reliable');
        await bus.close();
        await rejectsWithCode(bus.publish(topic, 1), 'KEEL_BUS_CLOSED');
      });

      it('refuses subscribe after close with KEEL_BUS_CLOSED', async () => {
        const topic = uniqueTopic<number>('closed-subscribe', 'latest');
        await bus.close();
        throwsWithCode(() => bus.subscribe(topic), 'KEEL_BUS_CLOSED');
      });

      it('closes idempotently, also through Symbol.asyncDispose', async () => {
        const topic = uniqueTopic<number>('closed-twice', 'reliable');
        const subscription = bus.subscribe(topic);
        await bus[Symbol.asyncDispose]();
        await bus.close();
        await bus.close();
        await rejectsWithCode(bus.publish(topic, 1), 'KEEL_BUS_CLOSED');
        assert.deepEqual(await consume(subscription), []);
      });
    });
  });
}
