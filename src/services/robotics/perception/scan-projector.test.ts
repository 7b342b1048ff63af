import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { quaternionFromRollPitchYaw, quaternionFromYaw } from '../geometry/quaternion.ts';
import {
  IDENTITY_TRANSFORM,
  planarTransform,
  rigidTransform,
} from '../geometry/rigid-transform.ts';
import { OccupancyOctree } from './occupancy-octree.ts';
import { type LaserScan, MAX_SCAN_BEAMS, ScanProjector } from './scan-projector.ts';
import { TransformTree } from './transform-tree.ts';

const LASER_HEIGHT = 0.32;

/** world → odom → base_link → laser; the base at (1, 2) facing +y at stamps 0 and 1000. */
function setup() {
  const transforms = new TransformTree();
  transforms.setStatic('world', 'odom', IDENTITY_TRANSFORM);
  transforms.set('odom', 'base_link', planarTransform(1, 2, Math.PI / 2), 0);
  transforms.set('odom', 'base_link', planarTransform(1, 2, Math.PI / 2), 1_000);
  transforms.setStatic(
    'base_link',
    'laser',
    rigidTransform({ x: 0.2, y: 0, z: LASER_HEIGHT }, quaternionFromYaw(0)),
  );
  const octree = new OccupancyOctree();
  return { transforms, octree, projector: new ScanProjector({ transforms, octree }) };
}

/** Three beams: right (−90°), ahead (0°), left (+90°) of the laser. */
function scan(ranges: ArrayLike<number>, overrides: Partial<LaserScan> = {}): LaserScan {
  return {
    frameId: 'laser',
    stampMs: 500,
    angleMin: -Math.PI / 2,
    angleIncrement: Math.PI / 2,
    rangeMin: 0.1,
    rangeMax: 10,
    ranges,
    ...overrides,
  };
}

function isKeelError(code: string) {
  return (error: unknown) => error instanceof KeelError && error.code === code;
}

describe('ScanProjector', () => {
  it('places each return in the world through the transform tree', () => {
    const { octree, projector } = setup();
    const summary = projector.insert(scan([1, 2, 3]));
    assert.deepEqual(summary, { hits: 3, misses: 0, returns: 3, noReturns: 0, dropped: 0 });
    // The laser sits at (1, 2.2) facing +y: right is +x, ahead is +y, left is −x.
    assert.equal(octree.isOccupied({ x: 2, y: 2.2, z: LASER_HEIGHT }), true);
    assert.equal(octree.isOccupied({ x: 1, y: 4.2, z: LASER_HEIGHT }), true);
    assert.equal(octree.isOccupied({ x: -2, y: 2.2, z: LASER_HEIGHT }), true);
    assert.equal(octree.occupiedCount(), 3);
  });

  it('uses the pose at the scan stamp, interpolated', () => {
    const transforms = new TransformTree();
    transforms.set('world', 'laser', planarTransform(0, 0, 0), 0);
    transforms.set('world', 'laser', planarTransform(2, 0, 0), 1_000);
    const octree = new OccupancyOctree();
    new ScanProjector({ transforms, octree }).insert(
      scan([Number.NaN, 3, Number.NaN], { stampMs: 250 }),
    );
    assert.equal(octree.isOccupied({ x: 3.5, y: 0, z: 0 }), true);
    assert.equal(octree.occupiedCount(), 1);
  });

  it('tilts beams with the sensor when it is not level', () => {
    const transforms = new TransformTree();
    transforms.setStatic(
      'world',
      'laser',
      rigidTransform({ x: 0, y: 0, z: 1.02 }, quaternionFromRollPitchYaw(0, Math.PI / 6, 0)),
    );
    const octree = new OccupancyOctree();
    new ScanProjector({ transforms, octree }).insert(scan([Number.NaN, 2, Number.NaN]));
    // Pitched down by 30°: 2 m ahead lands √3 m out and 1 m lower.
    assert.equal(octree.isOccupied({ x: Math.sqrt(3), y: 0, z: 0.02 }), true);
  });

  it('drops NaN, −∞ and ranges below rangeMin', () => {
    const { octree, projector } = setup();
    const summary = projector.insert(scan([Number.NaN, 0.05, Number.NEGATIVE_INFINITY]));
    assert.deepEqual(summary, { hits: 0, misses: 0, returns: 0, noReturns: 0, dropped: 3 });
    assert.equal(octree.size, 0);
  });

  it('clears up to rangeMax without marking for +∞ and ranges at or beyond rangeMax', () => {
    const { octree, projector } = setup();
    projector.insert(scan([1, 2, 3]));
    let summary = projector.insert(scan([Number.POSITIVE_INFINITY, 10, 25]));
    assert.deepEqual(
      { ...summary, hits: 0 },
      { hits: 0, misses: 3, returns: 0, noReturns: 3, dropped: 0 },
    );
    for (let again = 0; again < 5; again += 1)
      summary = projector.insert(scan([Number.POSITIVE_INFINITY, 10, 25]));
    assert.equal(octree.occupiedCount(), 0);
    assert.equal(octree.isOccupied({ x: 1, y: 12.2, z: LASER_HEIGHT }), false);
  });

  it('refuses malformed scans', () => {
    const { projector } = setup();
    const invalid = isKeelError('KEEL_INVALID_ARGUMENT');
    assert.throws(() => projector.insert(scan([1], { angleIncrement: Number.NaN })), invalid);
    assert.throws(() => projector.insert(scan([1], { angleIncrement: 0 })), invalid);
    assert.throws(
      () => projector.insert(scan([1], { angleMin: Number.POSITIVE_INFINITY })),
      invalid,
    );
    assert.throws(() => projector.insert(scan([1], { rangeMax: 0.1 })), invalid);
    assert.throws(() => projector.insert(scan([1], { rangeMin: -1 })), invalid);
    assert.throws(() => projector.insert(scan([1], { frameId: '' })), invalid);
    assert.throws(() => projector.insert(scan([1], { stampMs: Number.NaN })), invalid);
    assert.throws(() => projector.insert(scan(['1' as unknown as number])), invalid);
    assert.throws(
      () => projector.insert({ ...scan([]), ranges: undefined as unknown as number[] }),
      invalid,
    );
    assert.throws(
      () => projector.insert(scan(new Array<number>(MAX_SCAN_BEAMS + 1).fill(1))),
      (error) => error instanceof KeelError && error.details.maxBeams === MAX_SCAN_BEAMS,
    );
  });

  it('accepts the largest scan and a typed array of ranges', () => {
    const { octree, projector } = setup();
    const ranges = new Float32Array(MAX_SCAN_BEAMS).fill(4);
    const summary = projector.insert(
      scan(ranges, { angleMin: -Math.PI, angleIncrement: (2 * Math.PI) / MAX_SCAN_BEAMS }),
    );
    assert.equal(summary.returns, MAX_SCAN_BEAMS);
    assert.ok(octree.occupiedCount() > 400);
  });

  it('refuses a scan the transforms cannot place', () => {
    const { projector } = setup();
    assert.throws(
      () => projector.insert(scan([1], { frameId: 'sonar' })),
      isKeelError('KEEL_NOT_FOUND'),
    );
    assert.throws(
      () => projector.insert(scan([1], { stampMs: 5_000 })),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
  });
});
