import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DifferentialDrive } from './differential-drive.ts';

describe('DifferentialDrive', () => {
  it('turns a twist into wheel speeds and back', () => {
    const kinematics = new DifferentialDrive(0.4);
    assert.deepEqual(kinematics.toWheels({ linear: 0.5, angular: 1 }), { left: 0.3, right: 0.7 });
    fc.assert(
      fc.property(
        fc.double({ min: -2, max: 2, noNaN: true }),
        fc.double({ min: -3, max: 3, noNaN: true }),
        (linear, angular) => {
          const twist = kinematics.toTwist(kinematics.toWheels({ linear, angular }));
          return Math.abs(twist.linear - linear) < 1e-9 && Math.abs(twist.angular - angular) < 1e-9;
        },
      ),
    );
  });

  it('scales a command down to the top wheel speed, keeping its curvature', () => {
    const kinematics = new DifferentialDrive(0.5);
    const wheels = kinematics.toWheels({ linear: 1, angular: 2 }, 0.5);
    assert.ok(Math.max(Math.abs(wheels.left), Math.abs(wheels.right)) <= 0.5 + 1e-12);
    const twist = kinematics.toTwist(wheels);
    assert.ok(Math.abs(twist.angular / twist.linear - 2) < 1e-9);
  });

  it('refuses a wheelbase that is not a positive length', () => {
    assert.throws(() => new DifferentialDrive(0), /positive/);
    assert.throws(() => new DifferentialDrive(Number.NaN), /positive/);
  });
});
