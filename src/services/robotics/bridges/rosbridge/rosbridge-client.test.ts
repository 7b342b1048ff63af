import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { rejectsWithCode, throwsWithCode } from '../../../../../test/support/assertions.ts';
import { RosbridgeTestServer } from '../../../../../test/support/rosbridge-test-server.ts';
import { silentLogger } from '../../../../../test/support/silent-logger.ts';
import {
  RosbridgeClient,
  type RosbridgeClientOptions,
  type RosbridgeStateChange,
} from './rosbridge-client.ts';

const counterSchema = z.object({ data: z.number().int() });
const twist = { linear: { x: 0.25, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.5 } };

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let round = 0; round < 2_000; round += 1) {
    if (condition()) return;
    await delay(5);
  }
  throw new Error(`gave up waiting until ${what}`);
}

async function connectedPair(
  t: TestContext,
  options: Partial<RosbridgeClientOptions> = {},
): Promise<{
  server: RosbridgeTestServer;
  client: RosbridgeClient;
  changes: RosbridgeStateChange[];
}> {
  const server = await RosbridgeTestServer.start();
  const client = new RosbridgeClient({
    url: server.url,
    logger: silentLogger(),
    initialReconnectDelayMs: 10,
    maxReconnectDelayMs: 80,
    heartbeatIntervalMs: 0,
    ...options,
  });
  t.after(async () => {
    await client.close();
    await server.stop();
  });
  const changes: RosbridgeStateChange[] = [];
  client.onStateChange((change) => changes.push(change));
  return { server, client, changes };
}

async function start(client: RosbridgeClient): Promise<void> {
  client.start();
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
}

test('publishes an advertised message that reaches the server with its topic, type and id', async (t) => {
  const { server, client } = await connectedPair(t);
  client.advertise('/cmd_vel', 'geometry_msgs/Twist');
  await start(client);
  client.publish('/cmd_vel', twist);
  await waitUntil(() => server.operations({ op: 'publish' }).length === 1, 'the publish arrives');
  const [advertise] = server.operations({ op: 'advertise' });
  assert.equal(advertise?.frame.type, 'geometry_msgs/Twist');
  assert.equal(typeof advertise?.frame.id, 'string');
  const [publish] = server.operations({ op: 'publish' });
  assert.equal(publish?.topic, '/cmd_vel');
  assert.deepEqual(publish?.frame.msg, twist);
  assert.equal(typeof publish?.frame.id, 'string');
});

test('refuses to publish on a topic that was never advertised', async (t) => {
  const { client } = await connectedPair(t);
  await start(client);
  throwsWithCode(() => client.publish('/cmd_vel', twist), 'KEEL_INVALID_ARGUMENT');
});

test('delivers subscribed messages through their schema and counts the ones it rejects', async (t) => {
  const { server, client } = await connectedPair(t);
  const received: number[] = [];
  client.subscribe({
    topic: '/counter',
    type: 'std_msgs/Int32',
    schema: counterSchema,
    onMessage: (message) => received.push(message.data),
  });
  await start(client);
  await waitUntil(() => server.operations({ op: 'subscribe' }).length === 1, 'subscribed');
  assert.equal(server.operations({ op: 'subscribe' })[0]?.frame.type, 'std_msgs/Int32');
  server.publish('/counter', { data: 'seven' });
  server.publish('/counter', { data: 7 });
  await waitUntil(() => received.length === 1, 'the valid message arrives');
  assert.deepEqual(received, [7]);
  assert.equal(client.counters.invalidMessages, 1);
  assert.equal(client.counters.messagesDelivered, 1);
});

test('unsubscribing tells the server with the same id and stops delivery', async (t) => {
  const { server, client } = await connectedPair(t);
  const received: number[] = [];
  const subscription = client.subscribe({
    topic: '/counter',
    type: 'std_msgs/Int32',
    schema: counterSchema,
    onMessage: (message) => received.push(message.data),
  });
  await start(client);
  subscription.unsubscribe();
  await waitUntil(() => server.operations({ op: 'unsubscribe' }).length === 1, 'unsubscribed');
  assert.equal(server.operations({ op: 'unsubscribe' })[0]?.frame.id, subscription.id);
  assert.equal(server.publish('/counter', { data: 1 }), 0);
  assert.deepEqual(received, []);
});

test('keeps delivering after a subscriber throws, and counts the throw', async (t) => {
  const { server, client } = await connectedPair(t);
  const received: number[] = [];
  client.subscribe({
    topic: '/counter',
    type: 'std_msgs/Int32',
    schema: counterSchema,
    onMessage: (message) => {
      if (message.data === 1) throw new Error('subscriber bug');
      received.push(message.data);
    },
  });
  await start(client);
  await waitUntil(() => server.operations({ op: 'subscribe' }).length === 1, 'subscribed');
  server.publish('/counter', { data: 1 });
  server.publish('/counter', { data: 2 });
  await waitUntil(() => received.length === 1, 'the second message arrives');
  assert.equal(client.counters.handlerErrors, 1);
  assert.equal(client.state, 'connected');
});

test('after dropped connections it reconnects with backoff, advertises and subscribes again, and messages flow', async (t) => {
  const { server, client, changes } = await connectedPair(t);
  const received: number[] = [];
  client.advertise('/cmd_vel', 'geometry_msgs/Twist');
  client.subscribe({
    topic: '/counter',
    type: 'std_msgs/Int32',
    schema: counterSchema,
    onMessage: (message) => received.push(message.data),
  });
  await start(client);
  server.dropConnections();
  await waitUntil(
    () => server.connectionCount === 2 && server.operations({ connection: 2 }).length === 2,
    'the client is back on a second connection',
  );
  assert.deepEqual(
    server.operations({ connection: 2 }).map((operation) => [operation.op, operation.topic]),
    [
      ['advertise', '/cmd_vel'],
      ['subscribe', '/counter'],
    ],
  );
  const reconnecting = changes.find((change) => change.state === 'reconnecting');
  assert.equal(reconnecting?.attempt, 0);
  assert.ok(
    (reconnecting?.delayMs ?? 0) >= 5,
    'the first retry waits at least half the initial delay',
  );
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
  server.publish('/counter', { data: 42 });
  client.publish('/cmd_vel', twist);
  await waitUntil(() => received.length === 1, 'a message arrives on the new connection');
  await waitUntil(
    () => server.operations({ op: 'publish', connection: 2 }).length === 1,
    'a command arrives on the new connection',
  );
  assert.deepEqual(received, [42]);
});

test('backs off exponentially up to the maximum while the server is down, then reconnects on the same port', async (t) => {
  const { server, client, changes } = await connectedPair(t, { random: () => 1 });
  client.subscribe({
    topic: '/counter',
    type: 'std_msgs/Int32',
    schema: counterSchema,
    onMessage: () => undefined,
  });
  await start(client);
  const port = server.port;
  await server.stop();
  await waitUntil(() => client.counters.reconnectAttempts >= 5, 'five attempts failed');
  await server.restart();
  assert.equal(server.port, port);
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
  const delays = changes
    .filter((change) => change.state === 'reconnecting')
    .map((change) => change.delayMs);
  assert.deepEqual(delays.slice(0, 5), [10, 20, 40, 80, 80]);
  await waitUntil(
    () => server.operations({ op: 'subscribe', connection: 2 }).length === 1,
    'subscribed again after the restart',
  );
});

test('starts the backoff over after a stable connection, but not after a short one', async (t) => {
  const stable = await connectedPair(t, { random: () => 1, stableConnectionMs: 0 });
  const short = await connectedPair(t, { random: () => 1, stableConnectionMs: 60_000 });
  for (const { server, client } of [stable, short]) {
    await start(client);
    // Let the zero-delay stability timer of the first client run before the drop.
    await delay(1);
    server.dropConnections();
    await waitUntil(() => server.connectionCount === 2 && client.state === 'connected', 'back');
    await delay(1);
    server.dropConnections();
    await waitUntil(() => server.connectionCount === 3 && client.state === 'connected', 'back');
  }
  const delaysOf = (changes: RosbridgeStateChange[]) =>
    changes.filter((change) => change.state === 'reconnecting').map((change) => change.delayMs);
  assert.deepEqual(delaysOf(stable.changes), [10, 10]);
  assert.deepEqual(delaysOf(short.changes), [10, 20]);
});

test('publishing while disconnected throws KEEL_BRIDGE_UNAVAILABLE and the command is never sent later', async (t) => {
  const { server, client } = await connectedPair(t);
  client.advertise('/cmd_vel', 'geometry_msgs/Twist');
  await start(client);
  await server.stop();
  await waitUntil(() => client.state === 'reconnecting', 'the client notices');
  const stale = { linear: { x: 9, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } };
  const error = throwsWithCode(() => client.publish('/cmd_vel', stale), 'KEEL_BRIDGE_UNAVAILABLE');
  assert.equal((error as { retryable?: boolean }).retryable, true);
  await server.restart();
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
  client.publish('/cmd_vel', twist);
  await waitUntil(() => server.operations({ op: 'publish' }).length >= 1, 'the fresh command');
  assert.deepEqual(
    server.operations({ op: 'publish' }).map((operation) => operation.frame.msg),
    [twist],
  );
});

test('drops and counts malformed, wrong-shaped and oversized frames without disconnecting', async (t) => {
  const { server, client } = await connectedPair(t, { maxFrameBytes: 2_048 });
  const received: number[] = [];
  client.subscribe({
    topic: '/counter',
    type: 'std_msgs/Int32',
    schema: counterSchema,
    onMessage: (message) => received.push(message.data),
  });
  await start(client);
  await waitUntil(() => server.operations({ op: 'subscribe' }).length === 1, 'subscribed');
  server.sendRaw('{"op": "publish", "topic": ');
  server.sendRaw('[1, 2, 3]');
  server.sendRaw(JSON.stringify({ op: 'publish', topic: 7, msg: {} }));
  server.sendRaw(JSON.stringify({ op: 'publish', topic: '/counter', msg: { data: [] } }));
  server.sendRaw(
    JSON.stringify({ op: 'publish', topic: '/counter', msg: { data: 'x'.repeat(3_000) } }),
  );
  server.sendRaw(JSON.stringify({ op: 'service_response', service: '/x' }));
  server.publish('/counter', { data: 5 });
  await waitUntil(() => received.length === 1, 'the valid message after the bad ones');
  const counters = client.counters;
  assert.equal(counters.unparseableFrames, 1);
  assert.equal(counters.invalidFrames, 2);
  assert.equal(counters.invalidMessages, 1);
  assert.equal(counters.oversizedFrames, 1);
  assert.equal(counters.ignoredFrames, 1);
  assert.equal(counters.connections, 1);
  assert.equal(client.state, 'connected');
});

test('a frame beyond four times the cap closes the connection, and the client reconnects', async (t) => {
  const { server, client } = await connectedPair(t, { maxFrameBytes: 2_048 });
  await start(client);
  server.sendRaw('x'.repeat(10_000));
  await waitUntil(
    () => server.connectionCount === 2 && client.state === 'connected',
    'reconnected after the oversized frame',
  );
  assert.equal(client.counters.oversizedFrames, 1);
});

test('reports status operations from the server to listeners and counters', async (t) => {
  const { server, client } = await connectedPair(t);
  const statuses: string[] = [];
  client.onStatus((status) => statuses.push(`${status.level}: ${status.text}`));
  await start(client);
  server.sendRaw(JSON.stringify({ op: 'status', level: 'error', msg: 'no such topic' }));
  await waitUntil(() => statuses.length === 1, 'the status arrives');
  assert.deepEqual(statuses, ['error: no such topic']);
  assert.equal(client.counters.statusMessages, 1);
});

test('drops a connection whose pings go unanswered and reconnects', async (t) => {
  const { server, client } = await connectedPair(t, { heartbeatIntervalMs: 20 });
  await start(client);
  server.setUnresponsive(true);
  await waitUntil(() => client.counters.heartbeatTimeouts >= 1, 'the dead link is noticed');
  server.setUnresponsive(false);
  await waitUntil(
    () => server.connectionCount >= 2 && client.state === 'connected',
    'reconnected once the server answers again',
  );
});

test('close() while reconnecting stops every attempt and timer', async (t) => {
  const { server, client } = await connectedPair(t);
  client.advertise('/cmd_vel', 'geometry_msgs/Twist');
  await start(client);
  await server.stop();
  await waitUntil(() => client.state === 'reconnecting', 'reconnecting');
  await client.close();
  assert.equal(client.state, 'closed');
  const attempts = client.counters.reconnectAttempts;
  await server.restart();
  // Absence can only be shown by waiting: ten times the largest backoff delay.
  await delay(800);
  assert.equal(server.connectionCount, 1);
  assert.equal(client.counters.reconnectAttempts, attempts);
  throwsWithCode(() => client.publish('/cmd_vel', twist), 'KEEL_BRIDGE_UNAVAILABLE');
  await rejectsWithCode(
    client.waitUntilConnected(AbortSignal.timeout(1_000)),
    'KEEL_BRIDGE_UNAVAILABLE',
  );
});

test('waiting for a connection stops with KEEL_ABORTED when the signal aborts', async (t) => {
  const { client } = await connectedPair(t);
  await rejectsWithCode(client.waitUntilConnected(AbortSignal.abort()), 'KEEL_ABORTED');
});

test('accepts only ws:// and wss:// URLs and sane options', () => {
  const logger = silentLogger();
  for (const url of ['http://127.0.0.1:9090', 'file:///tmp/socket', 'not a url']) {
    throwsWithCode(() => new RosbridgeClient({ url, logger }), 'KEEL_INVALID_ARGUMENT');
  }
  throwsWithCode(
    () => new RosbridgeClient({ url: 'ws://127.0.0.1:9090', logger, maxFrameBytes: -1 }),
    'KEEL_INVALID_ARGUMENT',
  );
  throwsWithCode(
    () =>
      new RosbridgeClient({
        url: 'ws://127.0.0.1:9090',
        logger,
        initialReconnectDelayMs: 500,
        maxReconnectDelayMs: 100,
      }),
    'KEEL_INVALID_ARGUMENT',
  );
  assert.equal(new RosbridgeClient({ url: 'wss://127.0.0.1:9090', logger }).state, 'idle');
});
