import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfiguration } from '../../src/kernel/config/load-configuration.ts';
import { type KeelNode, startNode } from '../../src/runtime/node.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { DEMO_YARD } from '../../src/services/robotics/demo-yard.ts';
import { runKeel, startKeel } from '../support/keel-process.ts';
import { RosSimRobot } from '../support/ros-sim-robot.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';
import { roverManifest, waitForRun } from './rover-fixture.ts';

const WORLD = {
  bounds: { minX: -10, minY: -10, maxX: 10, maxY: 10 },
  obstacles: [{ type: 'box', minX: 4, minY: -1, maxX: 4.5, maxY: 1 }],
};

async function until(what: string, test: () => boolean, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!test()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

async function dataDirectory(
  parent: string,
  url: string,
  extra = '',
  before = '',
): Promise<string> {
  const data = join(parent, 'data');
  await mkdir(data, { mode: 0o700 });
  await writeFile(
    join(data, 'config.toml'),
    `[log]\nlevel = "silent"\n\n${before}[robotics]\nenabled = true\nbody = "rosbridge"\nrosbridge_url = "${url}"\n${extra}`,
    { mode: 0o600 },
  );
  return data;
}

/** A node on `data`, quiet. */
async function startOn(data: string): Promise<KeelNode> {
  return startNode({
    loaded: await loadConfiguration({ dataDirectory: data }),
    logger: silentLogger(),
  });
}

describe('a ROS robot behind rosbridge as the node’s body', { timeout: 120_000 }, () => {
  it('drives it with /cmd_vel from its own I/O thread, maps its /scan, and sends zero on an e-stop', async () => {
    await using ros = await RosSimRobot.start(WORLD);
    await using directory = await temporaryDirectory('keel-ros-');
    const data = await dataDirectory(directory.path, ros.url);
    const node = await startOn(data);
    try {
      const robot = node.robot;
      assert.ok(robot);
      await until('the first odometry', () => robot.status().pose !== null);
      await until('the link to report connected', () => robot.status().bridge === 'connected');
      await until(
        'the first scans in the map',
        () => (robot.status({ map: true }).map?.voxels ?? 0) > 0,
      );

      const refresh = setInterval(() => {
        void robot.teleop(0.3, 0, 'operator:test');
      }, 50);
      try {
        await until('the ROS robot to move', () => ros.robot.state().pose.x > 0.2);
      } finally {
        clearInterval(refresh);
      }
      const pose = robot.status().pose;
      assert.ok(
        pose !== null && Math.abs(pose.x - ros.robot.state().pose.x) < 0.2,
        'Keel’s pose follows /odom',
      );

      await robot.engage('operator', 'operator:test');
      await until('a zero /cmd_vel', () => ros.lastCommand()?.linear === 0);
      await until('the ROS robot to stop', () => ros.robot.state().linear === 0);
      const sent = ros.server.operations({ op: 'publish', topic: '/cmd_vel' }).length;
      await delay(300);
      const since = ros.server.operations({ op: 'publish', topic: '/cmd_vel' }).slice(sent);
      assert.ok(since.length > 0, 'zero twists keep going out while the e-stop is set');
      assert.ok(
        since.every(
          (operation) => (operation.frame.msg as { linear: { x: number } }).linear.x === 0,
        ),
      );
    } finally {
      await node.close('test done');
    }
  });

  it('tells the brain how old its pose is, and that a pose the robot stopped confirming is stale', async () => {
    const ros = await RosSimRobot.start(WORLD);
    await using directory = await temporaryDirectory('keel-ros-stale-');
    const data = await dataDirectory(directory.path, ros.url);
    const node = await startOn(data);
    try {
      const robot = node.robot;
      assert.ok(robot);
      await until('the first odometry', () => robot.status().pose !== null);
      const observe = robot.executors.find((executor) => executor.kind === 'hal.observe');
      assert.ok(observe);
      const observation = async () =>
        (
          (await observe.doExecute(
            { kind: 'hal.observe', resource: 'rover-1', params: {} } as never,
            { signal: new AbortController().signal } as never,
          )) as { value: { pose: unknown; poseAgeMs: number | null; poseStale: boolean } }
        ).value;
      const fresh = await observation();
      assert.equal(fresh.poseStale, false);
      assert.ok(fresh.poseAgeMs !== null && fresh.poseAgeMs < 1_000, String(fresh.poseAgeMs));
      // The robot's rosbridge goes away: no odometry confirms the pose any more.
      await ros[Symbol.asyncDispose]();
      await delay(1_300);
      const stale = await observation();
      assert.equal(stale.poseStale, true);
      assert.ok(stale.poseAgeMs !== null && stale.poseAgeMs > 1_000, String(stale.poseAgeMs));
      assert.notEqual(stale.pose, null, 'the last pose is kept');
    } finally {
      await node.close('test done');
      await ros[Symbol.asyncDispose]();
    }
  });

  it('leaves the ROS robot stopped by its own deadman when the node is killed with kill -9', async () => {
    await using ros = await RosSimRobot.start(WORLD);
    await using directory = await temporaryDirectory('keel-ros-kill-');
    // Each `keel robot teleop` is a process start: a long command timeout keeps the node's own
    // "drive" command alive between them, so the stop after the kill can only be the deadman's.
    const data = await dataDirectory(
      directory.path,
      ros.url,
      'command_timeout_ms = 6000\n\n[robotics.safety]\ncollision_horizon_seconds = 6\n',
    );
    const at = ['--data-dir', data];
    const keel = await startKeel([...at, '--port', '0'], { timeoutMs: 30_000 });
    try {
      let driving = true;
      const drive = (async () => {
        while (driving) {
          await runKeel(['robot', 'teleop', '0.3', '0', ...at]);
        }
      })();
      await until('the ROS robot to move', () => ros.robot.state().linear > 0.25, 30_000);
      keel.child.kill('SIGKILL');
      driving = false;
      await drive;
      const killedAt = Date.now();
      await until('the ROS robot to stop by itself', () => ros.robot.state().linear === 0, 5000);
      assert.ok(ros.lastCommandAt <= killedAt, 'no /cmd_vel came after the kill');
      assert.ok(
        (ros.lastCommand()?.linear ?? 0) > 0,
        'the last command before the kill was still "drive"',
      );
      const x = ros.robot.state().pose.x;
      await delay(300);
      assert.equal(ros.robot.state().pose.x, x, 'and it stays stopped');
    } finally {
      await keel[Symbol.asyncDispose]();
    }
  });

  it('lets the rover reach a goal behind a wall on the ROS robot, as on the simulator', async () => {
    await using ros = await RosSimRobot.start(DEMO_YARD);
    await using directory = await temporaryDirectory('keel-ros-rover-');
    await using mock = await MockLlmServer.start({
      script: parseMockScript({
        turns: [
          { reply: { toolCalls: [{ name: 'navigate_to', arguments: { x: 10, y: 2 } }] } },
          {
            expect: { role: 'tool', contains: 'arrived' },
            reply: { toolCalls: [{ name: 'finish', arguments: { summary: 'There.' } }] },
          },
        ],
      }),
    });
    const data = await dataDirectory(
      directory.path,
      ros.url,
      '',
      `[agents]\ndevelopment = true\n\n[models.providers.mock]\nkind = "openai-compatible"\nbase_url = "${mock.openAiBaseUrl}"\nmax_tokens_field = "max_tokens"\n\n[models.aliases]\nbrain = ["mock/brain-model"]\n\n`,
    );
    const node = await startOn(data);
    try {
      await until('the first odometry', () => node.robot?.status().pose !== null);
      await node.runtime.deploy(
        roverManifest({ bounds: DEMO_YARD.bounds, dock: { x: 1, y: 1 } }),
        'test',
      );
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Go to the bay.' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitForRun(node, submitted.id);
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      assert.deepEqual((ended.result as { reached: unknown[] }).reached, [{ x: 10, y: 2 }]);
      const truth = ros.robot.state();
      assert.ok(
        Math.hypot(truth.pose.x - 10, truth.pose.y - 2) < 0.6,
        `the ROS robot ended at (${truth.pose.x}, ${truth.pose.y})`,
      );
      assert.equal(truth.contacts, 0, 'zero collisions');
    } finally {
      await node.close('test done');
    }
  });
});
