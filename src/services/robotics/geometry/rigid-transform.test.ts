import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  angleBetweenQuaternions,
  normaliseQuaternion,
  quaternionFromYaw,
  yawOf,
} from './quaternion.ts';
import {
  applyTransform,
  composeTransforms,
  IDENTITY_TRANSFORM,
  interpolateTransforms,
  inverseTransform,
  planarTransform,
  type RigidTransform,
  rigidTransform,
} from './rigid-transform.ts';
import { distanceBetween, type Vector3 } from './vector3.ts';

const coordinate = fc.double({ min: -50, max: 50, noNaN: true });
const point = fc.record({ x: coordinate, y: coordinate, z: coordinate });
const unitComponent = fc.double({ min: -1, max: 1, noNaN: true });
const transform = fc
  .record({
    translation: point,
    rotation: fc
      .record({ w: unitComponent, x: unitComponent, y: unitComponent, z: unitComponent })
      .filter((q) => Math.hypot(q.w, q.x, q.y, q.z) > 0.1),
  })
  .map(({ translation, rotation }) => rigidTransform(translation, normaliseQuaternion(rotation)));

function assertSameTransform(actual: RigidTransform, expected: RigidTransform): void {
  assert.ok(distanceBetween(actual.translation, expected.translation) < 1e-8);
  assert.ok(angleBetweenQuaternions(actual.rotation, expected.rotation) < 1e-7);
}

function assertSamePoint(actual: Vector3, expected: Vector3): void {
  assert.ok(
    distanceBetween(actual, expected) < 1e-8,
    `${JSON.stringify(actual)} ≠ ${JSON.stringify(expected)}`,
  );
}

describe('rigid transform', () => {
  it('rotates, then translates, a point', () => {
    const baseInOdom = planarTransform(1, 2, Math.PI / 2);
    assertSamePoint(applyTransform(baseInOdom, { x: 1, y: 0, z: 0.5 }), { x: 1, y: 3, z: 0.5 });
  });

  it('round-trips through compose and inverse', () => {
    fc.assert(
      fc.property(transform, point, (t, p) => {
        assertSameTransform(composeTransforms(t, inverseTransform(t)), IDENTITY_TRANSFORM);
        assertSameTransform(composeTransforms(inverseTransform(t), t), IDENTITY_TRANSFORM);
        assertSamePoint(applyTransform(inverseTransform(t), applyTransform(t, p)), p);
      }),
    );
  });

  it('applies the inner transform first when composing', () => {
    fc.assert(
      fc.property(transform, transform, point, (outer, inner, p) => {
        assertSamePoint(
          applyTransform(composeTransforms(outer, inner), p),
          applyTransform(outer, applyTransform(inner, p)),
        );
      }),
    );
  });

  it('inverts a composition in reverse order', () => {
    fc.assert(
      fc.property(transform, transform, (first, second) => {
        assertSameTransform(
          inverseTransform(composeTransforms(first, second)),
          composeTransforms(inverseTransform(second), inverseTransform(first)),
        );
      }),
    );
  });

  it('interpolates translation linearly and rotation by slerp', () => {
    const from = planarTransform(0, 0, 0);
    const to = planarTransform(2, 4, 1);
    const quarter = interpolateTransforms(from, to, 0.25);
    assertSamePoint(quarter.translation, { x: 0.5, y: 1, z: 0 });
    assert.ok(Math.abs(yawOf(quarter.rotation) - 0.25) < 1e-12);
    assertSameTransform(interpolateTransforms(from, to, 1), to);
  });

  it('normalises the rotation it is given', () => {
    const made = rigidTransform({ x: 0, y: 0, z: 0 }, { w: 3, x: 0, y: 0, z: 0 });
    assert.deepEqual(made.rotation, { w: 1, x: 0, y: 0, z: 0 });
  });

  it('refuses a non-finite translation or a zero rotation', () => {
    assert.throws(
      () => rigidTransform({ x: Number.NaN, y: 0, z: 0 }, quaternionFromYaw(0)),
      (error) => error instanceof KeelError && error.code === 'KEEL_INVALID_ARGUMENT',
    );
    assert.throws(
      () => rigidTransform({ x: 0, y: 0, z: 0 }, { w: 0, x: 0, y: 0, z: 0 }),
      KeelError,
    );
  });
});
