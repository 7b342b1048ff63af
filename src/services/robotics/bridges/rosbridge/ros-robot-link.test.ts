import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { throwsWithCode } from '../../../../../test/support/assertions.ts';
import { RosbridgeTestServer } from '../../../../../test/support/rosbridge-test-server.ts';
import { silentLogger } from '../../../../../test/support/silent-logger.ts';
import type { LaserScan, Odometry, StampedTransform } from './ros-messages.ts';
import { RosRobotLink, type RosRobotTopics } from './ros-robot-link.ts';
import { RosbridgeClient } from './rosbridge-client.ts';

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let round = 0; round < 2_000; round += 1) {
    if (condition()) return;
    await delay(5);
  }
  throw new Error(`gave up waiting until ${what}`);
}

async function linkedRobot(
  t: TestContext,
  topics: RosRobotTopics = {},
): Promise<{ server: RosbridgeTestServer; client: RosbridgeClient; link: RosRobotLink }> {
  const server = await RosbridgeTestServer.start();
  const logger = silentLogger();
  const client = new RosbridgeClient({
    url: server.url,
    logger,
    initialReconnectDelayMs: 10,
    maxReconnectDelayMs: 80,
    heartbeatIntervalMs: 0,
  });
  const link = new RosRobotLink({ client, logger, topics });
  t.after(async () => {
    link.close();
    await client.close();
    await server.stop();
  });
  return { server, client, link };
}

async function startAndSubscribe(
  server: RosbridgeTestServer,
  client: RosbridgeClient,
  subscriptions: number,
): Promise<void> {
  client.start();
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
  await waitUntil(
    () => server.operations({ op: 'subscribe' }).length === subscriptions,
    'the server has every subscription',
  );
}

const ros2Header = { stamp: { sec: 1_700_000_000, nanosec: 250_000_000 }, frame_id: 'laser' };

function wireScan(ranges: unknown[]): Record<string, unknown> {
  return {
    header: ros2Header,
    angle_min: -1.5,
    angle_max: 1.5,
    angle_increment: 0.01,
    time_increment: 0,
    scan_time: 0.1,
    range_min: 0.05,
    range_max: 12,
    ranges,
    intensities: [],
  };
}

test('publishCmdVel advertises geometry_msgs/Twist on /cmd_vel and sends exactly the ROS fields', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  client.start();
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
  link.publishCmdVel({ linear: { x: 0.3, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.4 } });
  await waitUntil(() => server.operations({ op: 'publish' }).length === 1, 'the command arrives');
  const [advertise] = server.operations({ op: 'advertise' });
  assert.equal(advertise?.topic, '/cmd_vel');
  assert.equal(advertise?.frame.type, 'geometry_msgs/Twist');
  const [publish] = server.operations({ op: 'publish' });
  assert.equal(publish?.topic, '/cmd_vel');
  assert.deepEqual(publish?.frame.msg, {
    linear: { x: 0.3, y: 0, z: 0 },
    angular: { x: 0, y: 0, z: 0.4 },
  });
});

test('publishCmdVel refuses non-finite numbers and sends nothing', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  client.start();
  await client.waitUntilConnected(AbortSignal.timeout(5_000));
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
    throwsWithCode(
      () => link.publishCmdVel({ linear: { x: bad, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } }),
      'KEEL_INVALID_ARGUMENT',
    );
  }
  link.publishCmdVel({ linear: { x: 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } });
  await waitUntil(() => server.operations({ op: 'publish' }).length === 1, 'the valid command');
  assert.equal(server.operations({ op: 'publish' }).length, 1);
});

test('publishCmdVel throws KEEL_BRIDGE_UNAVAILABLE before the bridge connects', async (t) => {
  const { link } = await linkedRobot(t);
  throwsWithCode(
    () => link.publishCmdVel({ linear: { x: 0.1, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } }),
    'KEEL_BRIDGE_UNAVAILABLE',
  );
});

test('delivers /scan as a typed LaserScan, with null beams as NaN', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  const scans: LaserScan[] = [];
  link.onScan((scan) => scans.push(scan));
  await startAndSubscribe(server, client, 1);
  assert.equal(server.operations({ op: 'subscribe' })[0]?.frame.type, 'sensor_msgs/LaserScan');
  server.publish('/scan', wireScan([1.5, null, 2.25]));
  await waitUntil(() => scans.length === 1, 'the scan arrives');
  const [scan] = scans;
  assert.equal(scan?.stampMs, 1_700_000_000_250);
  assert.equal(scan?.frameId, 'laser');
  assert.equal(scan?.angleMin, -1.5);
  assert.equal(scan?.angleMax, 1.5);
  assert.equal(scan?.angleIncrement, 0.01);
  assert.equal(scan?.rangeMin, 0.05);
  assert.equal(scan?.rangeMax, 12);
  assert.deepEqual(scan?.ranges, [1.5, Number.NaN, 2.25]);
});

test('reads ROS 1 stamps and bare NaN and Infinity tokens in a scan', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  const scans: LaserScan[] = [];
  link.onScan((scan) => scans.push(scan));
  await startAndSubscribe(server, client, 1);
  const scan = {
    ...wireScan([]),
    header: { seq: 3, stamp: { secs: 10, nsecs: 500_000 }, frame_id: '/base_laser' },
  };
  const text = JSON.stringify({ op: 'publish', topic: '/scan', msg: scan }).replace(
    '"ranges":[]',
    '"ranges":[1,NaN,Infinity,-Infinity]',
  );
  server.sendRaw(text);
  await waitUntil(() => scans.length === 1, 'the scan arrives');
  assert.equal(scans[0]?.stampMs, 10_000.5);
  assert.equal(scans[0]?.frameId, 'base_laser');
  assert.deepEqual(scans[0]?.ranges, [
    1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
  ]);
  assert.equal(client.counters.unparseableFrames, 0);
});

test('drops a scan with more than 8192 beams and counts it', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  const scans: LaserScan[] = [];
  link.onScan((scan) => scans.push(scan));
  await startAndSubscribe(server, client, 1);
  server.publish('/scan', wireScan(new Array(8_193).fill(1)));
  server.publish('/scan', wireScan(new Array(8_192).fill(1)));
  await waitUntil(() => scans.length === 1, 'the scan within the cap arrives');
  assert.equal(scans[0]?.ranges.length, 8_192);
  assert.equal(client.counters.invalidMessages, 1);
});

test('delivers /odom as typed Odometry', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  const odometry: Odometry[] = [];
  link.onOdometry((message) => odometry.push(message));
  await startAndSubscribe(server, client, 1);
  assert.equal(server.operations({ op: 'subscribe' })[0]?.frame.type, 'nav_msgs/Odometry');
  server.publish('/odom', {
    header: { stamp: { sec: 5, nanosec: 0 }, frame_id: 'odom' },
    child_frame_id: 'base_link',
    pose: {
      pose: { position: { x: 1, y: 2, z: 0 }, orientation: { x: 0, y: 0, z: 0, w: 2 } },
      covariance: new Array(36).fill(0),
    },
    twist: {
      twist: { linear: { x: 0.5, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } },
      covariance: new Array(36).fill(0),
    },
  });
  await waitUntil(() => odometry.length === 1, 'the odometry arrives');
  assert.deepEqual(odometry[0], {
    stampMs: 5_000,
    frameId: 'odom',
    childFrameId: 'base_link',
    pose: { position: { x: 1, y: 2, z: 0 }, orientation: { x: 0, y: 0, z: 0, w: 1 } },
    twist: { linear: { x: 0.5, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } },
  });
});

test('delivers /tf and /tf_static as typed transforms and drops a batch with a zero quaternion', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  const dynamic: (readonly StampedTransform[])[] = [];
  const fixed: (readonly StampedTransform[])[] = [];
  link.onTransforms((transforms) => dynamic.push(transforms));
  link.onStaticTransforms((transforms) => fixed.push(transforms));
  await startAndSubscribe(server, client, 2);
  const transform = (child: string, w: number) => ({
    header: { stamp: { sec: 7, nanosec: 1_000_000 }, frame_id: '/odom' },
    child_frame_id: child,
    transform: { translation: { x: 1, y: 0, z: 0 }, rotation: { x: 0, y: 0, z: 0, w } },
  });
  server.publish('/tf', { transforms: [transform('base_link', 1), transform('broken', 0)] });
  server.publish('/tf', { transforms: [transform('base_link', 1)] });
  server.publish('/tf_static', { transforms: [transform('laser', 1)] });
  await waitUntil(() => dynamic.length === 1 && fixed.length === 1, 'both batches arrive');
  assert.deepEqual(dynamic[0], [
    {
      stampMs: 7_001,
      parentFrameId: 'odom',
      childFrameId: 'base_link',
      translation: { x: 1, y: 0, z: 0 },
      rotation: { x: 0, y: 0, z: 0, w: 1 },
    },
  ]);
  assert.equal(fixed[0]?.[0]?.childFrameId, 'laser');
  assert.equal(client.counters.invalidMessages, 1);
});

test('uses the configured topic names', async (t) => {
  const { server, client, link } = await linkedRobot(t, {
    cmdVel: '/base/cmd_vel',
    scan: '/front/scan',
    odometry: '/base/odom',
    transforms: '/robot/tf',
  });
  link.onScan(() => undefined);
  link.onOdometry(() => undefined);
  link.onTransforms(() => undefined);
  await startAndSubscribe(server, client, 3);
  assert.deepEqual(
    server.operations().map((operation) => `${operation.op} ${operation.topic}`),
    [
      'advertise /base/cmd_vel',
      'subscribe /front/scan',
      'subscribe /base/odom',
      'subscribe /robot/tf',
    ],
  );
});

test('close() sends a stopping twist, unsubscribes and withdraws /cmd_vel, leaving the client open', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  link.onScan(() => undefined);
  await startAndSubscribe(server, client, 1);
  link.close();
  await waitUntil(() => server.operations({ op: 'unadvertise' }).length === 1, 'withdrawn');
  assert.deepEqual(
    server.operations().map((operation) => operation.op),
    ['advertise', 'subscribe', 'publish', 'unsubscribe', 'unadvertise'],
  );
  assert.deepEqual(server.operations({ op: 'publish' })[0]?.frame.msg, {
    linear: { x: 0, y: 0, z: 0 },
    angular: { x: 0, y: 0, z: 0 },
  });
  assert.equal(client.state, 'connected');
  throwsWithCode(
    () => link.publishCmdVel({ linear: { x: 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } }),
    'KEEL_BRIDGE_UNAVAILABLE',
  );
});

test('after the server restarts, /cmd_vel is advertised again and scans and commands flow again', async (t) => {
  const { server, client, link } = await linkedRobot(t);
  const scans: LaserScan[] = [];
  link.onScan((scan) => scans.push(scan));
  await startAndSubscribe(server, client, 1);
  await server.restart();
  await waitUntil(
    () =>
      client.state === 'connected' &&
      server.operations({ op: 'subscribe', connection: 2 }).length === 1,
    'the link is back on a second connection',
  );
  assert.equal(server.operations({ op: 'advertise', topic: '/cmd_vel', connection: 2 }).length, 1);
  server.publish('/scan', wireScan([3]));
  link.publishCmdVel({ linear: { x: 0.1, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } });
  await waitUntil(() => scans.length === 1, 'a scan arrives after the restart');
  await waitUntil(
    () => server.operations({ op: 'publish', connection: 2 }).length === 1,
    'a command arrives after the restart',
  );
});
