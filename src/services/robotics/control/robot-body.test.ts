import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { silentLogger } from '../../../../test/support/silent-logger.ts';
import { RobotBody } from './robot-body.ts';

const WORLD = {
  bounds: { minX: -10, minY: -10, maxX: 10, maxY: 10 },
  obstacles: [{ type: 'box', minX: 4, minY: -1, maxX: 5, maxY: 1 }],
};

async function until<T>(
  read: () => T | undefined,
  accept: (value: T) => boolean,
  what: string,
  limitMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = read();
    if (value !== undefined && accept(value)) return value;
    if (Date.now() > deadline)
      assert.fail(`timed out waiting for ${what}; last ${JSON.stringify(value)}`);
    await delay(10);
  }
}

describe('RobotBody (control loop thread)', () => {
  let body: RobotBody;
  before(async () => {
    body = await RobotBody.start({
      body: { type: 'sim', world: WORLD, robot: { start: { x: 0, y: 0, yaw: 0 } } },
      logger: silentLogger(),
    });
  });
  after(async () => {
    await body.close();
  });

  it('drives while the command is refreshed, and stops on its own when it is not', async () => {
    const started = body.state()?.x ?? 0;
    const refresh = setInterval(() => body.drive(0.4, 0), 50);
    try {
      await until(
        () => body.state(),
        (state) => state.x > started + 0.3,
        'the base to move',
      );
    } finally {
      clearInterval(refresh);
    }
    await until(
      () => body.state(),
      (state) => state.linear === 0 && state.mode === 0,
      'the command timeout to stop the base',
    );
  });

  it('engages the e-stop: zero energy at once, every motion refused, until released', async () => {
    const refresh = setInterval(() => {
      if (!body.engaged) body.drive(0.5, 0.2);
    }, 20);
    try {
      await until(
        () => body.state(),
        (state) => state.linear > 0.2,
        'speed',
      );
      assert.equal(body.engage('operator'), false);
      assert.equal(body.engage('api'), true, 'a second engage sees the latch already set');
      assert.equal(body.estopReason, 'operator');
      await until(
        () => body.state(),
        (state) => state.linear === 0 && state.angular === 0,
        'zero energy',
      );
      assert.throws(() => body.drive(0.1, 0), { code: 'KEEL_ESTOP_ENGAGED' });
      await assert.rejects(body.followTrajectory([{ x: 1, y: 1 }], 0.3), {
        code: 'KEEL_ESTOP_ENGAGED',
      });
      await assert.rejects(body.moveEndEffector({ x: 0.3, y: 0, z: 0.3 }), {
        code: 'KEEL_ESTOP_ENGAGED',
      });
      await assert.rejects(body.setRelay('lamp', true), { code: 'KEEL_ESTOP_ENGAGED' });
    } finally {
      clearInterval(refresh);
    }
    assert.equal(body.release(), true);
    await delay(100);
    const released = body.state();
    assert.equal(released?.mode, 0, 'the command from before the e-stop is not revived');
    assert.equal(released?.linear, 0);
  });

  it('follows a trajectory to its last waypoint', async () => {
    const state = body.state();
    assert.ok(state);
    const goal = { x: state.x - 1, y: state.y + 1.5 };
    const { outcome } = await body.followTrajectory([{ x: state.x, y: state.y + 1 }, goal], 0.6);
    assert.equal(await outcome, 'reached');
    const end = body.state();
    assert.ok(end && Math.hypot(end.x - goal.x, end.y - goal.y) < 0.4);
  });

  it('keeps ticking while the main thread is blocked', async () => {
    const before = body.state()?.ticks ?? 0;
    const blockedUntil = Date.now() + 300;
    while (Date.now() < blockedUntil) {
      // Hold the main thread, as a heavy brain would.
    }
    const during = (body.state()?.ticks ?? 0) - before;
    assert.ok(
      during >= 10,
      `the loop ticked ${during} times while the main thread was blocked for 300 ms`,
    );
  });

  it('never acts on a command or request sent before an e-stop, however quickly it is released', async () => {
    const request = body.followTrajectory([{ x: 3, y: 3 }], 0.5);
    body.drive(0.5, 0);
    assert.equal(body.engage('operator'), false);
    assert.equal(body.release(), true);
    await assert.rejects(request, { code: 'KEEL_ESTOP_ENGAGED' });
    await delay(150);
    const state = body.state();
    assert.equal(state?.mode, 0);
    assert.equal(state?.linear, 0);
  });

  it('applies what the brain sent in the order it sent it', async () => {
    const start = body.state();
    assert.ok(start);
    const first = await body.followTrajectory([{ x: start.x + 2, y: start.y }], 0.3);
    body.drive(0, 0.2);
    assert.equal(await first.outcome, 'replaced');
    await until(
      () => body.state(),
      (state) => state.mode === 1,
      'the later velocity command to win',
    );
    body.drive(0, 0.2);
    const second = await body.followTrajectory([{ x: start.x, y: start.y + 0.01 }], 0.3);
    await until(
      () => body.state(),
      (state) => state.mode === 2 || state.mode === 0,
      'the later trajectory to win',
    );
    assert.notEqual(
      await Promise.race([second.outcome, delay(50).then(() => 'running')]),
      'replaced',
    );
    await body.stopMotion();
  });

  it('refuses a trajectory the loop cannot follow: no points, a NaN, a speed of zero or less', async () => {
    await assert.rejects(body.followTrajectory([], 0.3), { code: 'KEEL_INVALID_ARGUMENT' });
    await assert.rejects(body.followTrajectory([{ x: Number.NaN, y: 0 }], 0.3), {
      code: 'KEEL_INVALID_ARGUMENT',
    });
    await assert.rejects(body.followTrajectory([{ x: 1, y: 0 }], -0.5), {
      code: 'KEEL_INVALID_ARGUMENT',
    });
    assert.equal(body.state()?.mode, 0);
  });

  it('stops a trajectory when the brain’s heartbeat stops', async () => {
    const start = body.state();
    assert.ok(start);
    const { outcome } = await body.followTrajectory([{ x: start.x - 3, y: start.y - 3 }], 0.3);
    const blockedUntil = Date.now() + 1500;
    while (Date.now() < blockedUntil) {
      // A wedged brain: no heartbeat for longer than its timeout.
    }
    assert.equal(await outcome, 'stopped');
  });

  it('lets only the human drive during teleoperation', async () => {
    const overrideUntil = Date.now() + 800;
    const refused: Array<{ code?: string }> = [];
    const refresh = setInterval(() => {
      body.teleop(0.2, 0, overrideUntil);
      try {
        body.drive(0.6, 0);
      } catch (error) {
        refused.push(error as { code?: string });
      }
    }, 20);
    try {
      await until(
        () => body.state(),
        (state) => state.linear > 0.15,
        'the human’s speed',
      );
      await delay(200);
      assert.ok((body.state()?.linear ?? 1) < 0.25, 'the agent’s faster command did not drive');
      assert.ok(
        refused.length > 0 && refused.every((error) => error.code === 'KEEL_POLICY_VIOLATION'),
      );
      await assert.rejects(body.followTrajectory([{ x: 0, y: 0 }], 0.3), {
        code: 'KEEL_POLICY_VIOLATION',
      });
    } finally {
      clearInterval(refresh);
    }
    await body.stopMotion();
    await delay(900);
  });

  it('answers arm, relay and camera requests through the loop', async () => {
    const joints = await body.moveEndEffector({ x: 0.3, y: 0.1, z: 0.4 });
    assert.ok(Number.isFinite(joints.shoulder));
    await assert.rejects(body.moveEndEffector({ x: 3, y: 0, z: 0 }), {
      code: 'KEEL_INVALID_ARGUMENT',
    });
    await assert.rejects(body.setRelay('horn', true), { code: 'KEEL_NOT_FOUND' });
    assert.deepEqual(await body.setRelay('lamp', true), { relayId: 'lamp', state: true });
    const frame = await body.capture();
    assert.equal(frame.pixels.length, frame.width * frame.height);
  });
});

describe('RobotBody exit paths', () => {
  it('drives to zero energy on close, and refuses motion afterwards', async () => {
    const body = await RobotBody.start({
      body: { type: 'sim', world: WORLD, robot: { start: { x: -5, y: 0, yaw: 0 } } },
      logger: silentLogger(),
    });
    body.drive(0.5, 0);
    await until(
      () => body.state(),
      (state) => state.linear > 0.1,
      'speed',
    );
    await body.close();
    assert.throws(() => body.drive(0.1, 0), { code: 'KEEL_HAL_FAULT' });
  });

  it('keeps the latch set, and refuses every motion, once the loop thread is gone', async () => {
    const body = await RobotBody.start({
      body: { type: 'sim', world: WORLD },
      logger: silentLogger(),
    });
    try {
      await body.kill('watchdog');
      assert.equal(body.engaged, true);
      assert.equal(body.estopReason, 'watchdog');
      assert.throws(() => body.drive(0.1, 0), { code: 'KEEL_ESTOP_ENGAGED' });
      assert.throws(() => body.release(), { code: 'KEEL_HAL_FAULT' });
      assert.equal(body.engaged, true, 'a dead loop cannot be released');
    } finally {
      await body.close();
    }
  });

  it('refuses a rate outside 1–1000 Hz and a world it cannot build', async () => {
    await assert.rejects(
      RobotBody.start({
        body: { type: 'sim', world: WORLD },
        rateHz: 5000,
        logger: silentLogger(),
      }),
      {
        code: 'KEEL_INVALID_ARGUMENT',
      },
    );
    await assert.rejects(
      RobotBody.start({
        body: { type: 'sim', world: { bounds: 'nowhere' } },
        logger: silentLogger(),
      }),
      {
        code: 'KEEL_HAL_FAULT',
      },
    );
  });
});
