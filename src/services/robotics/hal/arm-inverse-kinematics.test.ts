import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { armForwardKinematics, solveArmInverseKinematics } from './arm-inverse-kinematics.ts';

const geometry = { shoulderHeight: 0.1, upperLength: 0.3, foreLength: 0.25 };

describe('arm inverse kinematics', () => {
  it('reaches every reachable target (forward kinematics of the solution is the target)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -Math.PI, max: Math.PI, noNaN: true }),
        fc.double({ min: 0.06, max: 0.54, noNaN: true }),
        fc.double({ min: -1.2, max: 1.2, noNaN: true }),
        (bearing, reach, elevation) => {
          const radial = reach * Math.cos(elevation);
          const target = {
            x: radial * Math.cos(bearing),
            y: radial * Math.sin(bearing),
            z: geometry.shoulderHeight + reach * Math.sin(elevation),
          };
          const reached = armForwardKinematics(
            geometry,
            solveArmInverseKinematics(geometry, target),
          );
          return (
            Math.hypot(reached.x - target.x, reached.y - target.y, reached.z - target.z) < 1e-9
          );
        },
      ),
    );
  });

  it('solves elbow up', () => {
    const joints = solveArmInverseKinematics(geometry, { x: 0.4, y: 0, z: 0.1 });
    assert.ok(joints.elbow < 0);
    assert.ok(joints.shoulder > 0);
  });

  it('refuses a target beyond full reach or inside the inner dead zone', () => {
    assert.throws(
      () => solveArmInverseKinematics(geometry, { x: 0.551, y: 0, z: 0.1 }),
      /out of the arm/,
    );
    assert.doesNotThrow(() => solveArmInverseKinematics(geometry, { x: 0.549, y: 0, z: 0.1 }));
    assert.throws(() => solveArmInverseKinematics(geometry, { x: 0.04, y: 0, z: 0.1 }), /reach/);
  });
});
