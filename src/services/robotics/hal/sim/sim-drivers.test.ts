import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { armContract, driveBaseContract, relayContract } from '../hal-drivers.contract.ts';
import { SimRelay } from './sim-arm.ts';
import { SimRobot } from './sim-robot.ts';
import { SimWorld } from './sim-world.ts';

const open = new SimWorld({ bounds: { minX: -50, minY: -50, maxX: 50, maxY: 50 } });

function simFixture<Driver>(pick: (robot: SimRobot) => Driver) {
  const robot = new SimRobot(open, { start: { x: 0, y: 0, yaw: 0 } });
  let now = 0;
  return {
    driver: pick(robot),
    now: () => now,
    advance: (ms: number) => {
      for (let elapsed = 0; elapsed < ms; elapsed += 10) {
        now += 10;
        robot.step(0.01, now);
      }
    },
  };
}

driveBaseContract('sim', () => simFixture((robot) => robot.base));
armContract('sim', () => simFixture((robot) => robot.arm));
relayContract('sim', () => simFixture((robot) => robot.relays[0] ?? new SimRelay('lamp')));

describe('sim robot', () => {
  it('ramps wheel speeds within the acceleration limit', () => {
    const robot = new SimRobot(open, { acceleration: 1 });
    robot.base.doCommand({ left: 1, right: 1 }, 0);
    robot.step(0.1, 100);
    assert.ok(Math.abs(robot.base.readWheels().left - 0.1) < 1e-9);
  });

  it('does not drive through a wall and counts the contact once', () => {
    const world = new SimWorld({ bounds: { minX: 0, minY: 0, maxX: 2, maxY: 2 } });
    const robot = new SimRobot(world, { start: { x: 1, y: 1, yaw: 0 }, radius: 0.25 });
    let now = 0;
    for (let step = 0; step < 400; step += 1) {
      now += 10;
      robot.base.doCommand({ left: 0.5, right: 0.5 }, now);
      robot.step(0.01, now);
    }
    const state = robot.state();
    assert.ok(state.pose.x <= 1.75 + 1e-9);
    assert.ok(state.contacts >= 1);
  });

  it('sees an obstacle with the LiDAR at its distance, straight ahead', () => {
    const world = new SimWorld({
      bounds: { minX: -10, minY: -10, maxX: 10, maxY: 10 },
      obstacles: [{ type: 'circle', x: 3, y: 0, radius: 0.5 }],
    });
    const robot = new SimRobot(world, {
      start: { x: 0, y: 0, yaw: 0 },
      lidar: { beams: 360, rangeNoise: 0 },
    });
    const scan = robot.scan(0);
    const ahead = Math.round((0 - scan.angleMin) / scan.angleIncrement);
    assert.ok(Math.abs((scan.ranges[ahead] ?? 0) - 2.5) < 1e-4);
    const behind = 0;
    assert.ok(Math.abs((scan.ranges[behind] ?? 0) - 10) < 1e-4);
  });

  it('reports no return beyond the LiDAR range', () => {
    const world = new SimWorld({ bounds: { minX: -100, minY: -100, maxX: 100, maxY: 100 } });
    const robot = new SimRobot(world, { start: { x: 0, y: 0, yaw: 0 }, lidar: { rangeMax: 5 } });
    assert.ok(robot.scan(0).ranges.every((range) => range === Number.POSITIVE_INFINITY));
  });

  it('renders a nearer obstacle taller in the camera', () => {
    const near = new SimWorld({
      bounds: { minX: -20, minY: -20, maxX: 20, maxY: 20 },
      obstacles: [{ type: 'box', minX: 1, minY: -1, maxX: 1.5, maxY: 1 }],
    });
    const far = new SimWorld({
      bounds: { minX: -20, minY: -20, maxX: 20, maxY: 20 },
      obstacles: [{ type: 'box', minX: 6, minY: -1, maxX: 6.5, maxY: 1 }],
    });
    const bandHeight = (world: SimWorld) => {
      const frame = new SimRobot(world, { start: { x: 0, y: 0, yaw: 0 } }).camera.capture(0);
      const column = frame.width / 2;
      let rows = 0;
      for (let row = 0; row < frame.height; row += 1) {
        const value = frame.pixels[row * frame.width + column] ?? 0;
        if (value !== 200 && value !== 30) rows += 1;
      }
      return rows;
    };
    assert.ok(bandHeight(near) > bandHeight(far));
    assert.ok(bandHeight(far) > 0);
  });

  it('drifts its odometry from the truth, and its gyro carries the configured bias', () => {
    const robot = new SimRobot(open, {
      start: { x: 0, y: 0, yaw: 0 },
      noise: { wheelSpeedNoise: 0.05, gyroBias: 0.02, gyroNoise: 0 },
    });
    let now = 0;
    for (let step = 0; step < 1000; step += 1) {
      now += 10;
      robot.base.doCommand({ left: 0.4, right: 0.5 }, now);
      robot.step(0.01, now);
    }
    const truth = robot.state().pose;
    const odometry = robot.odometry.read(now);
    assert.notEqual(odometry.x, truth.x);
    assert.ok(Math.hypot(odometry.x - truth.x, odometry.y - truth.y) < 1);
    assert.ok(Math.abs(robot.imu.read(now).yawRate - robot.state().angular - 0.02) < 1e-9);
  });

  it('drains the battery as it drives and charges it on the dock', () => {
    const world = new SimWorld({
      bounds: { minX: -10, minY: -10, maxX: 10, maxY: 10 },
      dock: { x: 0, y: 0 },
    });
    const robot = new SimRobot(world, { battery: { start: 0.5, perMetre: 0.1 } });
    robot.step(1, 1000);
    assert.ok(robot.state().charging);
    assert.ok(robot.state().battery > 0.5);
    let now = 1000;
    for (let step = 0; step < 300; step += 1) {
      now += 10;
      robot.base.doCommand({ left: 1, right: 1 }, now);
      robot.step(0.01, now);
    }
    assert.ok(robot.state().battery < 0.5);
  });
});
