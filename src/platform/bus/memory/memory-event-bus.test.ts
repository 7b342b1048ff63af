import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { rejectsWithCode, throwsWithCode } from '../../../../test/support/assertions.ts';
import { describeEventBusContract } from '../event-bus.contract.ts';
import { defineTopic, MAX_TOPIC_NAME_LENGTH, type TopicDelivery } from '../topic.ts';
import { createMemoryEventBus, type MemoryEventBus } from './memory-event-bus.ts';

describeEventBusContract('memory', async () => createMemoryEventBus());

async function take<T>(iterator: AsyncIterator<T>, count: number): Promise<T[]> {
  const values: T[] = [];
  while (values.length < count) {
    const result = await iterator.next();
    assert.equal(result.done, false);
    values.push(result.value);
  }
  return values;
}

function range(count: number, start = 0): number[] {
  return Array.from({ length: count }, (_, index) => start + index);
}

describe('memory event bus', () => {
  let bus: MemoryEventBus;

  beforeEach(() => {
    bus = createMemoryEventBus();
  });

  afterEach(async () => {
    await bus.close();
  });

  it('never calls a topic validate function: in-process values are trusted', async () => {
    let calls = 0;
    const topic = defineTopic<number>('memory.trusted', 'reliable', {
      validate: (value) => {
        calls += 1;
        throw new TypeError(`refused ${String(value)}`);
      },
    });
    const subscription = bus.subscribe(topic);
    await bus.publish(topic, 1);
    assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), [1]);
    assert.equal(calls, 0);
  });

  it('hands a consumer that pulls after five publishes exactly the fifth value', async () => {
    const topic = defineTopic<number>('memory.pose', 'latest');
    const subscription = bus.subscribe(topic);
    for (const value of range(5, 1)) await bus.publish(topic, value);
    const iterator = subscription[Symbol.asyncIterator]();
    assert.deepEqual(await take(iterator, 1), [5]);
    assert.equal(subscription.dropped, 4);
  });

  it('counts the waiting messages and the one that did not fit as dropped on overflow', async () => {
    const topic = defineTopic<number>('memory.overflow', 'reliable');
    const subscription = bus.subscribe(topic, { maxPending: 3 });
    for (const index of range(4)) await bus.publish(topic, index);
    const error = await rejectsWithCode(
      subscription[Symbol.asyncIterator]().next(),
      'KEEL_BUS_SUBSCRIBER_OVERFLOW',
    );
    assert.deepEqual(error.details, { topic: 'memory.overflow', maxPending: 3, dropped: 4 });
  });

  it('forgets subscriptions that break, close, abort or overflow', async () => {
    const topic = defineTopic<number>('memory.leaks', 'reliable');
    const broken = bus.subscribe(topic);
    const closed = bus.subscribe(topic);
    const controller = new AbortController();
    bus.subscribe(topic, { signal: controller.signal });
    const overflowing = bus.subscribe(topic, { maxPending: 1 });
    const kept = bus.subscribe(topic);
    assert.equal(bus.subscriberCount(topic), 5);

    await bus.publish(topic, 0);
    for await (const value of broken) {
      assert.equal(value, 0);
      break;
    }
    closed.close();
    controller.abort();
    await bus.publish(topic, 1);
    assert.equal(bus.subscriberCount(topic), 1);
    assert.equal(bus.subscriberCount(), 1);
    await rejectsWithCode(
      overflowing[Symbol.asyncIterator]().next(),
      'KEEL_BUS_SUBSCRIBER_OVERFLOW',
    );
    assert.deepEqual(await take(kept[Symbol.asyncIterator](), 2), [0, 1]);
  });

  it('registers no subscription for a signal that has already aborted', () => {
    const topic = defineTopic<number>('memory.aborted', 'latest');
    bus.subscribe(topic, { signal: AbortSignal.abort() });
    assert.equal(bus.subscriberCount(topic), 0);
  });

  it('forgets every subscription when it closes', async () => {
    bus.subscribe(defineTopic<number>('memory.first', 'reliable'));
    bus.subscribe(defineTopic<number>('memory.second', 'latest'));
    assert.equal(bus.subscriberCount(), 2);
    await bus.close();
    assert.equal(bus.subscriberCount(), 0);
  });

  it('removes its abort listener from a long-lived signal when a subscription ends', async () => {
    const topic = defineTopic<number>('memory.listeners', 'reliable');
    const controller = new AbortController();
    const subscriptions = range(100).map(() => bus.subscribe(topic, { signal: controller.signal }));
    assert.equal(getEventListeners(controller.signal, 'abort').length, 100);
    for (const subscription of subscriptions.slice(0, 50)) subscription.close();
    assert.equal(getEventListeners(controller.signal, 'abort').length, 50);
    await bus.close();
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  it('keeps order through queue growth, wrap-around and shrinking after a burst', async () => {
    const topic = defineTopic<number>('memory.queue', 'reliable');
    const iterator = bus.subscribe(topic)[Symbol.asyncIterator]();
    let published = 0;
    const received: number[] = [];
    for (const burst of [5_000, 3, 40, 17, 2_500]) {
      for (let count = 0; count < burst; count += 1) await bus.publish(topic, published++);
      received.push(...(await take(iterator, Math.ceil(burst / 2))));
    }
    received.push(...(await take(iterator, published - received.length)));
    assert.deepEqual(received, range(published));
  });

  it('shares nothing between two buses', async () => {
    const other = createMemoryEventBus();
    try {
      const topic = defineTopic<string>('memory.isolated', 'reliable');
      const subscription = bus.subscribe(topic);
      await other.publish(topic, 'other bus');
      await bus.publish(topic, 'this bus');
      assert.deepEqual(await take(subscription[Symbol.asyncIterator](), 1), ['this bus']);
      assert.equal(other.subscriberCount(), 0);
    } finally {
      await other.close();
    }
  });

  it('types publish and subscribe by the message type of the topic', async () => {
    const topic = defineTopic<{ readonly approvalId: string }>('memory.typed', 'reliable');
    const subscription = bus.subscribe(topic);
    // @ts-expect-error a message of another type is a compile error (checked by tsc)
    await bus.publish(topic, { approvalId: 1 });
    await bus.publish(topic, { approvalId: 'apr_1' });
    const [first, second] = await take(subscription[Symbol.asyncIterator](), 2);
    // In-process values are trusted, so the ill-typed one arrives as it was published.
    assert.deepEqual(first, { approvalId: 1 });
    const approvalId: string | undefined = second?.approvalId;
    assert.equal(approvalId, 'apr_1');
  });
});

describe('defineTopic', () => {
  it('returns a frozen descriptor with the name and delivery class', () => {
    const topic = defineTopic<number>('approvals.requested', 'reliable');
    assert.equal(topic.name, 'approvals.requested');
    assert.equal(topic.delivery, 'reliable');
    assert.equal(topic.validate, undefined);
    assert.ok(Object.isFrozen(topic));
  });

  it('keeps a validate function for adapters that cross a process boundary', () => {
    const validate = (value: unknown): number => Number(value);
    const topic = defineTopic('hal.telemetry.rover-1', 'latest', { validate });
    assert.equal(topic.validate, validate);
  });

  it('accepts dotted lowercase segments with digits, hyphens and underscores', () => {
    const names = [
      'heartbeat',
      'approvals.requested',
      'hal.telemetry.rover-1',
      'runs.run_0193f1c2a4b07c3d.events',
      'v2.a-b_c.9',
      `a.${'b'.repeat(MAX_TOPIC_NAME_LENGTH - 2)}`,
    ];
    for (const name of names) assert.equal(defineTopic(name, 'latest').name, name);
  });

  it('refuses a malformed name with KEEL_INVALID_ARGUMENT', () => {
    const names = [
      '',
      'Approvals.requested',
      'approvals..requested',
      '.approvals',
      'approvals.',
      'approvals requested',
      'approvals.*',
      'approvals.>',
      'rover-.1',
      'rover--1',
      '-rover',
      'rover_',
      'émission',
      `a.${'b'.repeat(MAX_TOPIC_NAME_LENGTH - 1)}`,
    ];
    for (const name of names) {
      throwsWithCode(() => defineTopic(name, 'reliable'), 'KEEL_INVALID_ARGUMENT');
    }
  });

  it('refuses a name that is not a string, an unknown delivery class and a non-function validate', () => {
    throwsWithCode(() => defineTopic(42 as unknown as string, 'reliable'), 'KEEL_INVALID_ARGUMENT');
    throwsWithCode(
      () => defineTopic('commands.drive', 'eventually' as TopicDelivery),
      'KEEL_INVALID_ARGUMENT',
    );
    throwsWithCode(
      () =>
        defineTopic('commands.drive', 'reliable', {
          validate: 'yes' as unknown as (value: unknown) => number,
        }),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});
