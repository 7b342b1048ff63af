import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addVectors,
  crossVectors,
  distanceBetween,
  dotVectors,
  isFiniteVector,
  lerpVectors,
  normaliseVector,
  scaleVector,
  subtractVectors,
  vector3,
  vectorLength,
  ZERO_VECTOR,
} from './vector3.ts';

const component = fc.double({ min: -1e3, max: 1e3, noNaN: true });
const anyVector = fc.record({ x: component, y: component, z: component });

describe('vector3', () => {
  it('adds, subtracts and scales component by component', () => {
    assert.deepEqual(addVectors(vector3(1, 2, 3), vector3(10, 20, 30)), { x: 11, y: 22, z: 33 });
    assert.deepEqual(subtractVectors(vector3(1, 2, 3), vector3(10, 20, 30)), {
      x: -9,
      y: -18,
      z: -27,
    });
    assert.deepEqual(scaleVector(vector3(1, -2, 3), -2), { x: -2, y: 4, z: -6 });
  });

  it('defaults z to 0 for planar points', () => {
    assert.deepEqual(vector3(1, 2), { x: 1, y: 2, z: 0 });
  });

  it('follows the right-hand rule for the cross product', () => {
    assert.deepEqual(crossVectors(vector3(1, 0, 0), vector3(0, 1, 0)), { x: 0, y: 0, z: 1 });
    assert.deepEqual(crossVectors(vector3(0, 1, 0), vector3(1, 0, 0)), { x: 0, y: 0, z: -1 });
  });

  it('gives a cross product perpendicular to both factors', () => {
    fc.assert(
      fc.property(anyVector, anyVector, (left, right) => {
        const cross = crossVectors(left, right);
        const scale = vectorLength(left) * vectorLength(right) * vectorLength(cross) + 1;
        assert.ok(Math.abs(dotVectors(cross, left)) <= 1e-9 * scale);
        assert.ok(Math.abs(dotVectors(cross, right)) <= 1e-9 * scale);
      }),
    );
  });

  it('measures lengths and distances', () => {
    assert.equal(vectorLength(vector3(3, 4, 12)), 13);
    assert.equal(distanceBetween(vector3(1, 1, 1), vector3(4, 5, 1)), 5);
  });

  it('normalises to unit length and leaves the zero vector at zero', () => {
    const unit = normaliseVector(vector3(0, 3, 4));
    assert.ok(Math.abs(vectorLength(unit) - 1) < 1e-12);
    assert.ok(distanceBetween(unit, { x: 0, y: 0.6, z: 0.8 }) < 1e-12);
    assert.deepEqual(normaliseVector(ZERO_VECTOR), ZERO_VECTOR);
  });

  it('interpolates linearly between two points', () => {
    assert.deepEqual(lerpVectors(vector3(0, 0, 0), vector3(2, -4, 8), 0.25), {
      x: 0.5,
      y: -1,
      z: 2,
    });
    assert.deepEqual(lerpVectors(vector3(1, 2, 3), vector3(5, 6, 7), 1), { x: 5, y: 6, z: 7 });
  });

  it('recognises non-finite vectors', () => {
    assert.equal(isFiniteVector(vector3(1, 2, 3)), true);
    assert.equal(isFiniteVector(vector3(1, Number.NaN, 3)), false);
    assert.equal(isFiniteVector(vector3(1, 2, Number.POSITIVE_INFINITY)), false);
  });
});
