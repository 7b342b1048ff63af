import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  angleBetweenQuaternions,
  normaliseQuaternion,
  quaternionFromYaw,
  yawOf,
} from '../geometry/quaternion.ts';
import {
  applyTransform,
  composeTransforms,
  IDENTITY_TRANSFORM,
  inverseTransform,
  planarTransform,
  type RigidTransform,
  rigidTransform,
} from '../geometry/rigid-transform.ts';
import { distanceBetween, type Vector3 } from '../geometry/vector3.ts';
import { TransformTree } from './transform-tree.ts';

function assertSamePoint(actual: Vector3, expected: Vector3, tolerance = 1e-9): void {
  assert.ok(
    distanceBetween(actual, expected) <= tolerance,
    `${JSON.stringify(actual)} is not ${JSON.stringify(expected)}`,
  );
}

function assertSameTransform(actual: RigidTransform, expected: RigidTransform): void {
  assertSamePoint(actual.translation, expected.translation, 1e-8);
  assert.ok(angleBetweenQuaternions(actual.rotation, expected.rotation) < 1e-7);
}

function isKeelError(code: string) {
  return (error: unknown) => error instanceof KeelError && error.code === code;
}

/** world → odom → base_link → {laser, camera}, the laser 0.2 m ahead and 0.3 m up. */
function robotTree(): TransformTree {
  const tree = new TransformTree();
  tree.setStatic(
    'base_link',
    'laser',
    rigidTransform({ x: 0.2, y: 0, z: 0.3 }, quaternionFromYaw(0)),
  );
  tree.setStatic(
    'base_link',
    'camera',
    rigidTransform({ x: 0, y: 0.1, z: 1 }, quaternionFromYaw(Math.PI)),
  );
  tree.set('world', 'odom', planarTransform(10, 0, 0), 0);
  tree.set('world', 'odom', planarTransform(10, 0, 0), 2_000);
  tree.set('odom', 'base_link', planarTransform(0, 0, 0), 0);
  tree.set('odom', 'base_link', planarTransform(2, 0, Math.PI / 2), 1_000);
  return tree;
}

describe('TransformTree', () => {
  it('composes the chain from a sensor up to the world', () => {
    const worldFromLaser = robotTree().lookup('world', 'laser', 1_000);
    // base at (12, 0) facing +y; the laser 0.2 m ahead of it, 0.3 m up.
    assertSamePoint(applyTransform(worldFromLaser, { x: 0, y: 0, z: 0 }), {
      x: 12,
      y: 0.2,
      z: 0.3,
    });
    assertSamePoint(applyTransform(worldFromLaser, { x: 1, y: 0, z: 0 }), {
      x: 12,
      y: 1.2,
      z: 0.3,
    });
  });

  it('looks up the inverse direction as the inverse transform', () => {
    const tree = robotTree();
    assertSameTransform(
      tree.lookup('laser', 'world', 700),
      inverseTransform(tree.lookup('world', 'laser', 700)),
    );
  });

  it('goes through the common ancestor between sibling frames', () => {
    const cameraFromLaser = robotTree().lookup('camera', 'laser', 500);
    // The laser origin is 0.2 ahead, 0.1 right of and 0.7 below the camera, which faces backwards.
    assertSamePoint(applyTransform(cameraFromLaser, { x: 0, y: 0, z: 0 }), {
      x: -0.2,
      y: 0.1,
      z: -0.7,
    });
  });

  it('interpolates between the neighbouring stamps of an edge', () => {
    const odomFromBase = robotTree().lookup('odom', 'base_link', 250);
    assertSamePoint(odomFromBase.translation, { x: 0.5, y: 0, z: 0 });
    assert.ok(Math.abs(yawOf(odomFromBase.rotation) - Math.PI / 8) < 1e-12);
  });

  it('returns the identity for a frame looked up against itself', () => {
    assertSameTransform(robotTree().lookup('laser', 'laser', 100), IDENTITY_TRANSFORM);
  });

  it('keeps samples in stamp order when they arrive out of order', () => {
    const tree = new TransformTree();
    tree.set('odom', 'base_link', planarTransform(3, 0, 0), 300);
    tree.set('odom', 'base_link', planarTransform(1, 0, 0), 100);
    tree.set('odom', 'base_link', planarTransform(2, 0, 0), 200);
    assertSamePoint(tree.lookup('odom', 'base_link', 150).translation, { x: 1.5, y: 0, z: 0 });
    assertSamePoint(tree.lookup('odom', 'base_link', 250).translation, { x: 2.5, y: 0, z: 0 });
  });

  it('replaces a sample sent again with the same stamp', () => {
    const tree = new TransformTree();
    tree.set('odom', 'base_link', planarTransform(1, 0, 0), 100);
    tree.set('odom', 'base_link', planarTransform(5, 0, 0), 100);
    assert.equal(tree.sampleCount('base_link'), 1);
    assertSamePoint(tree.lookup('odom', 'base_link', 100).translation, { x: 5, y: 0, z: 0 });
  });

  it('refuses to extrapolate past the newest stamp beyond the tolerance', () => {
    const tree = new TransformTree({ extrapolationToleranceMs: 20 });
    tree.set('odom', 'base_link', planarTransform(0, 0, 0), 0);
    tree.set('odom', 'base_link', planarTransform(1, 0, 0), 1_000);
    assertSamePoint(tree.lookup('odom', 'base_link', 1_020).translation, { x: 1, y: 0, z: 0 });
    assert.throws(
      () => tree.lookup('odom', 'base_link', 1_021),
      (error) =>
        error instanceof KeelError &&
        error.code === 'KEEL_INVALID_ARGUMENT' &&
        error.details.parent === 'odom' &&
        error.details.child === 'base_link' &&
        error.details.newestMs === 1_000 &&
        error.details.oldestMs === 0 &&
        error.details.toleranceMs === 20,
    );
  });

  it('refuses to extrapolate before the oldest stamp beyond the tolerance', () => {
    const tree = new TransformTree({ extrapolationToleranceMs: 0 });
    tree.set('odom', 'base_link', planarTransform(0, 0, 0), 500);
    tree.set('odom', 'base_link', planarTransform(1, 0, 0), 600);
    assertSamePoint(tree.lookup('odom', 'base_link', 500).translation, { x: 0, y: 0, z: 0 });
    assert.throws(
      () => tree.lookup('odom', 'base_link', 499.5),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
  });

  it('holds a static transform at every time', () => {
    const tree = new TransformTree();
    tree.setStatic('base_link', 'laser', planarTransform(0.2, 0, 0));
    for (const stamp of [-1e12, 0, 1e12]) {
      assertSamePoint(tree.lookup('base_link', 'laser', stamp).translation, { x: 0.2, y: 0, z: 0 });
    }
  });

  it('refuses unknown frames and frames in separate trees', () => {
    const tree = robotTree();
    tree.setStatic('dock', 'charger', IDENTITY_TRANSFORM);
    assert.throws(() => tree.lookup('world', 'gripper', 0), isKeelError('KEEL_NOT_FOUND'));
    assert.throws(() => tree.lookup('gripper', 'gripper', 0), isKeelError('KEEL_NOT_FOUND'));
    assert.throws(() => tree.lookup('world', 'charger', 0), isKeelError('KEEL_NOT_FOUND'));
    assert.equal(tree.canTransform('world', 'charger', 0), false);
    assert.equal(tree.canTransform('world', 'laser', 0), true);
  });

  it('refuses a second parent for a frame', () => {
    const tree = robotTree();
    assert.throws(
      () => tree.set('world', 'base_link', IDENTITY_TRANSFORM, 0),
      (error) =>
        error instanceof KeelError &&
        error.code === 'KEEL_CONFLICT' &&
        error.details.parent === 'odom',
    );
    assert.equal(tree.parentOf('base_link'), 'odom');
  });

  it('refuses an edge that would close a cycle, or a frame as its own parent', () => {
    const tree = robotTree();
    assert.throws(
      () => tree.set('laser', 'world', IDENTITY_TRANSFORM, 0),
      isKeelError('KEEL_CONFLICT'),
    );
    assert.throws(
      () => tree.setStatic('base_link', 'odom', IDENTITY_TRANSFORM),
      isKeelError('KEEL_CONFLICT'),
    );
    assert.throws(
      () => tree.set('map', 'map', IDENTITY_TRANSFORM, 0),
      isKeelError('KEEL_CONFLICT'),
    );
    assert.equal(tree.parentOf('world'), undefined);
  });

  it('refuses to mix static and dynamic samples on one edge', () => {
    const tree = robotTree();
    assert.throws(
      () => tree.set('base_link', 'laser', IDENTITY_TRANSFORM, 0),
      isKeelError('KEEL_CONFLICT'),
    );
    assert.throws(
      () => tree.setStatic('odom', 'base_link', IDENTITY_TRANSFORM),
      isKeelError('KEEL_CONFLICT'),
    );
  });

  it('refuses bad ids, stamps and transforms', () => {
    const tree = new TransformTree();
    assert.throws(
      () => tree.set('', 'a', IDENTITY_TRANSFORM, 0),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => tree.set('a', 'b', IDENTITY_TRANSFORM, Number.NaN),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () =>
        tree.set(
          'a',
          'b',
          {
            translation: { x: Number.POSITIVE_INFINITY, y: 0, z: 0 },
            rotation: quaternionFromYaw(0),
          },
          0,
        ),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(() => tree.lookup('a', 'b', Number.NaN), isKeelError('KEEL_INVALID_ARGUMENT'));
    assert.deepEqual(tree.frames(), []);
    assert.throws(
      () => new TransformTree({ bufferDurationMs: 0 }),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
  });

  it('keeps only the buffer duration of history, however long it runs', () => {
    const tree = new TransformTree({ bufferDurationMs: 1_000 });
    for (let stamp = 0; stamp <= 60_000; stamp += 10) {
      tree.set('odom', 'base_link', planarTransform(stamp / 1_000, 0, 0), stamp);
    }
    assert.equal(tree.sampleCount('base_link'), 101);
    assertSamePoint(tree.lookup('odom', 'base_link', 59_500).translation, { x: 59.5, y: 0, z: 0 });
    assert.throws(
      () => tree.lookup('odom', 'base_link', 58_000),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.equal(tree.set('odom', 'base_link', IDENTITY_TRANSFORM, 1_000), false);
    assert.equal(tree.sampleCount('base_link'), 101);
  });

  it('caps the samples of an edge at maxSamplesPerEdge', () => {
    const tree = new TransformTree({ maxSamplesPerEdge: 5 });
    for (let stamp = 0; stamp < 2_000; stamp += 100)
      tree.set('odom', 'base_link', IDENTITY_TRANSFORM, stamp);
    assert.equal(tree.sampleCount('base_link'), 5);
    assert.equal(tree.canTransform('odom', 'base_link', 1_500), true);
    assert.equal(tree.canTransform('odom', 'base_link', 1_400), false);
  });

  it('lists its frames and their parents', () => {
    assert.deepEqual(robotTree().frames(), ['base_link', 'camera', 'laser', 'odom', 'world']);
  });

  it('gives lookups that invert each other for any edge transforms', () => {
    const coordinate = fc.double({ min: -20, max: 20, noNaN: true });
    const unit = fc.double({ min: -1, max: 1, noNaN: true });
    const transform = fc
      .record({
        translation: fc.record({ x: coordinate, y: coordinate, z: coordinate }),
        rotation: fc
          .record({ w: unit, x: unit, y: unit, z: unit })
          .filter((q) => Math.hypot(q.w, q.x, q.y, q.z) > 0.1),
      })
      .map(({ translation, rotation }) =>
        rigidTransform(translation, normaliseQuaternion(rotation)),
      );
    fc.assert(
      fc.property(transform, transform, transform, (odom, base, laser) => {
        const tree = new TransformTree();
        tree.setStatic('world', 'odom', odom);
        tree.set('odom', 'base_link', base, 0);
        tree.setStatic('base_link', 'laser', laser);
        const forward = tree.lookup('world', 'laser', 0);
        assertSameTransform(forward, composeTransforms(odom, composeTransforms(base, laser)));
        assertSameTransform(
          composeTransforms(forward, tree.lookup('laser', 'world', 0)),
          IDENTITY_TRANSFORM,
        );
      }),
    );
  });
});
