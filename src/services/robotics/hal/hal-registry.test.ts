import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HalRegistry } from './hal-registry.ts';
import { SimRobot } from './sim/sim-robot.ts';
import { SimWorld } from './sim/sim-world.ts';

function rig() {
  const world = new SimWorld({ bounds: { minX: -20, minY: -20, maxX: 20, maxY: 20 } });
  const robot = new SimRobot(world, { start: { x: 0, y: 0, yaw: 0 }, relays: ['lamp', 'pump'] });
  const latch = { engaged: false };
  return { robot, latch, hal: new HalRegistry(robot.drivers, () => latch.engaged) };
}

describe('HalRegistry', () => {
  it('drives the base through differential-drive kinematics', () => {
    const { robot, hal } = rig();
    for (let step = 1; step <= 100; step += 1) {
      hal.drive({ linear: 0.5, angular: 1 }, step * 10);
      robot.step(0.01, step * 10);
    }
    const wheels = robot.base.readWheels();
    assert.ok(Math.abs(wheels.left - 0.3) < 1e-9 && Math.abs(wheels.right - 0.7) < 1e-9);
  });

  it('refuses every motion while the e-stop is engaged, but lets a relay open', () => {
    const { hal, latch } = rig();
    hal.setRelay('pump', true);
    latch.engaged = true;
    assert.throws(() => hal.drive({ linear: 0.1, angular: 0 }, 0), { code: 'KEEL_ESTOP_ENGAGED' });
    assert.throws(() => hal.moveEndEffector({ x: 0.3, y: 0, z: 0.3 }), {
      code: 'KEEL_ESTOP_ENGAGED',
    });
    assert.throws(() => hal.setRelay('lamp', true), { code: 'KEEL_ESTOP_ENGAGED' });
    hal.setRelay('pump', false);
  });

  it('drives every actuator to zero energy', () => {
    const { robot, hal } = rig();
    hal.setRelay('lamp', true);
    hal.drive({ linear: 1, angular: 0 }, 0);
    for (let step = 1; step <= 50; step += 1) robot.step(0.01, step * 10);
    hal.zeroEnergy();
    for (let step = 51; step <= 150; step += 1) robot.step(0.01, step * 10);
    assert.deepEqual(robot.base.readWheels(), { left: 0, right: 0 });
    assert.equal(robot.relays[0]?.read(), false);
  });

  it('names the relays it has when asked for one it has not', () => {
    const { hal } = rig();
    assert.throws(
      () => hal.setRelay('horn', true),
      (error: { code: string; details: { relays: string[] } }) => {
        assert.equal(error.code, 'KEEL_NOT_FOUND');
        assert.deepEqual(error.details.relays, ['lamp', 'pump']);
        return true;
      },
    );
  });

  it('moves the arm to an end-effector target through inverse kinematics', () => {
    const { robot, hal } = rig();
    const joints = hal.moveEndEffector({ x: 0.3, y: 0.2, z: 0.35 });
    for (let step = 1; step <= 500; step += 1) robot.step(0.01, step * 10);
    const reached = robot.arm.readJoints();
    assert.ok(Math.abs(reached.base - joints.base) < 0.01);
    assert.throws(() => hal.moveEndEffector({ x: 5, y: 0, z: 0 }), {
      code: 'KEEL_INVALID_ARGUMENT',
    });
  });

  it('refuses two drivers with the same id', () => {
    const { robot } = rig();
    assert.throws(() => new HalRegistry([robot.base, robot.base], () => false), {
      code: 'KEEL_CONFLICT',
    });
  });
});
