import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  angleBetweenQuaternions,
  conjugateQuaternion,
  IDENTITY_QUATERNION,
  inverseQuaternion,
  multiplyQuaternions,
  normaliseQuaternion,
  type Quaternion,
  quaternionFromAxisAngle,
  quaternionFromRollPitchYaw,
  quaternionFromYaw,
  rotateVector,
  slerpQuaternions,
  wrapAngle,
  yawOf,
} from './quaternion.ts';
import { vectorLength } from './vector3.ts';

const angle = fc.double({ min: -10, max: 10, noNaN: true });
const unitComponent = fc.double({ min: -1, max: 1, noNaN: true });
const rotation = fc
  .record({ w: unitComponent, x: unitComponent, y: unitComponent, z: unitComponent })
  .filter((q) => Math.hypot(q.w, q.x, q.y, q.z) > 0.1)
  .map((q) => normaliseQuaternion(q));
const vector = fc.record({
  x: fc.double({ min: -100, max: 100, noNaN: true }),
  y: fc.double({ min: -100, max: 100, noNaN: true }),
  z: fc.double({ min: -100, max: 100, noNaN: true }),
});

function assertClose(actual: number, expected: number, tolerance = 1e-9): void {
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${actual} is not within ${tolerance} of ${expected}`,
  );
}

function assertSameRotation(actual: Quaternion, expected: Quaternion, tolerance = 1e-9): void {
  assertClose(angleBetweenQuaternions(actual, expected), 0, tolerance);
}

describe('quaternion', () => {
  it('turns +x into +y with a yaw of a quarter turn', () => {
    const turned = rotateVector(quaternionFromYaw(Math.PI / 2), { x: 1, y: 0, z: 0 });
    assertClose(turned.x, 0);
    assertClose(turned.y, 1);
    assertClose(turned.z, 0);
  });

  it('agrees with the axis-angle form about +z', () => {
    fc.assert(
      fc.property(angle, (yaw) => {
        assertSameRotation(
          quaternionFromAxisAngle({ x: 0, y: 0, z: 5 }, yaw),
          quaternionFromYaw(yaw),
        );
      }),
    );
  });

  it('adds yaws when multiplying rotations about +z', () => {
    fc.assert(
      fc.property(angle, angle, (first, second) => {
        const product = multiplyQuaternions(quaternionFromYaw(first), quaternionFromYaw(second));
        assertClose(wrapAngle(yawOf(product) - (first + second)), 0, 1e-9);
      }),
    );
  });

  it('applies the right factor first when multiplying', () => {
    const pitch = quaternionFromAxisAngle({ x: 0, y: 1, z: 0 }, Math.PI / 2);
    const yaw = quaternionFromYaw(Math.PI / 2);
    // Pitch +x down to −z first, then yaw leaves it at −z.
    const result = rotateVector(multiplyQuaternions(yaw, pitch), { x: 1, y: 0, z: 0 });
    assertClose(result.x, 0);
    assertClose(result.y, 0);
    assertClose(result.z, -1);
  });

  it('undoes a rotation with its conjugate and its inverse', () => {
    fc.assert(
      fc.property(rotation, vector, (q, v) => {
        const back = rotateVector(conjugateQuaternion(q), rotateVector(q, v));
        const scale = vectorLength(v) + 1;
        assertClose(back.x, v.x, 1e-9 * scale);
        assertClose(back.y, v.y, 1e-9 * scale);
        assertClose(back.z, v.z, 1e-9 * scale);
        assertSameRotation(multiplyQuaternions(q, inverseQuaternion(q)), IDENTITY_QUATERNION, 1e-7);
      }),
    );
  });

  it('inverts a quaternion that is not of unit length', () => {
    const scaled = { w: 2, x: 0, y: 0, z: 2 };
    const product = multiplyQuaternions(scaled, inverseQuaternion(scaled));
    assertClose(product.w, 1);
    assertClose(product.z, 0);
  });

  it('preserves lengths when rotating', () => {
    fc.assert(
      fc.property(rotation, vector, (q, v) => {
        assertClose(
          vectorLength(rotateVector(q, v)),
          vectorLength(v),
          1e-9 * (vectorLength(v) + 1),
        );
      }),
    );
  });

  it('slerps from one rotation to the other at constant angular speed', () => {
    const from = quaternionFromYaw(0.2);
    const to = quaternionFromYaw(1.4);
    assertSameRotation(slerpQuaternions(from, to, 0), from);
    assertSameRotation(slerpQuaternions(from, to, 1), to);
    assertClose(yawOf(slerpQuaternions(from, to, 0.25)), 0.5);
  });

  it('slerps the short way round across ±π', () => {
    const halfway = yawOf(slerpQuaternions(quaternionFromYaw(3), quaternionFromYaw(-3), 0.5));
    assertClose(Math.abs(halfway), Math.PI, 1e-9);
  });

  it('slerps between nearly equal rotations without dividing by zero', () => {
    const from = quaternionFromYaw(1);
    const to = quaternionFromYaw(1 + 1e-9);
    const middle = slerpQuaternions(from, to, 0.5);
    assertClose(yawOf(middle), 1 + 5e-10, 1e-12);
  });

  it('reads the yaw of a rotation that also rolls and pitches', () => {
    assertClose(yawOf(quaternionFromRollPitchYaw(0.1, -0.2, 1.3)), 1.3, 1e-12);
  });

  it('wraps angles into (−π, π]', () => {
    assert.equal(wrapAngle(-Math.PI), Math.PI);
    assert.equal(wrapAngle(Math.PI), Math.PI);
    fc.assert(
      fc.property(fc.double({ min: -1e4, max: 1e4, noNaN: true }), (value) => {
        const wrapped = wrapAngle(value);
        assert.ok(wrapped > -Math.PI && wrapped <= Math.PI);
        assertClose(Math.sin(wrapped), Math.sin(value), 1e-8);
        assertClose(Math.cos(wrapped), Math.cos(value), 1e-8);
      }),
    );
  });

  it('refuses an axis with no direction and the zero quaternion', () => {
    assert.throws(
      () => quaternionFromAxisAngle({ x: 0, y: 0, z: 0 }, 1),
      (error) => error instanceof KeelError && error.code === 'KEEL_INVALID_ARGUMENT',
    );
    assert.throws(
      () => normaliseQuaternion({ w: 0, x: 0, y: 0, z: 0 }),
      (error) => error instanceof KeelError && error.code === 'KEEL_INVALID_ARGUMENT',
    );
    assert.throws(() => inverseQuaternion({ w: 0, x: 0, y: 0, z: 0 }), KeelError);
  });
});
