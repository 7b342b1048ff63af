import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { distanceBetween, type Vector3 } from '../geometry/vector3.ts';
import { OccupancyOctree } from './occupancy-octree.ts';

const SENSOR: Vector3 = { x: 0.01, y: 0.01, z: 0.32 };
const HIT = Math.log(0.7 / 0.3);
const MAX = Math.log(0.97 / 0.03);

function at(x: number, y: number, z = SENSOR.z): Vector3 {
  return { x, y, z };
}

function isKeelError(code: string) {
  return (error: unknown) => error instanceof KeelError && error.code === code;
}

describe('OccupancyOctree', () => {
  it('marks the voxel of a return occupied with the hit probability', () => {
    const map = new OccupancyOctree();
    assert.deepEqual(map.insertRay(SENSOR, at(2, 0.01)), { hits: 1, misses: 0 });
    assert.equal(map.isOccupied(at(2, 0.01)), true);
    assert.ok(Math.abs((map.occupancy(at(2.02, 0.03)) ?? 0) - 0.7) < 1e-12);
    assert.equal(map.occupancy(at(2.1, 0.01)), undefined);
    assert.equal(map.isOccupied(at(2.1, 0.01)), false);
  });

  it('clamps repeated hits at clampingMax', () => {
    const map = new OccupancyOctree();
    for (let scan = 0; scan < 20; scan += 1) map.insertRay(SENSOR, at(2, 0.01));
    assert.ok(Math.abs((map.logOdds(at(2, 0.01)) ?? 0) - MAX) < 1e-12);
  });

  it('clears a voxel that a later ray passes through, so a moved obstacle disappears', () => {
    const map = new OccupancyOctree();
    for (let scan = 0; scan < 5; scan += 1) map.insertRay(SENSOR, at(2, 0.01));
    assert.equal(map.isOccupied(at(2, 0.01)), true);
    // The obstacle moved away: the beam now returns from a wall behind where it stood.
    let scans = 0;
    while (map.isOccupied(at(2, 0.01)) && scans < 50) {
      const summary = map.insertRay(SENSOR, at(5, 0.01));
      assert.equal(summary.misses, 1);
      scans += 1;
    }
    assert.ok(scans > 1 && scans < 50, `cleared after ${scans} scans`);
    assert.equal(map.isOccupied(at(5, 0.01)), true);
    // Further misses drive it to the floor, and then it is forgotten.
    for (let scan = 0; scan < 20; scan += 1) map.insertRay(SENSOR, at(5, 0.01));
    assert.equal(map.occupancy(at(2, 0.01)), undefined);
    assert.equal(map.size, 1);
  });

  it('does not clear an obstacle with a beam that returns just in front of it', () => {
    const map = new OccupancyOctree();
    map.insertRay(SENSOR, at(2.02, 0.01));
    for (let scan = 0; scan < 20; scan += 1) map.insertRay(SENSOR, at(1.97, 0.01));
    assert.equal(map.isOccupied(at(2.02, 0.01)), true);
  });

  it('clears along a beam with no return without marking its end', () => {
    const map = new OccupancyOctree();
    map.insertRay(SENSOR, at(1, 1));
    map.insertRay(SENSOR, at(3, 3), false);
    assert.ok((map.logOdds(at(1, 1)) ?? 0) < HIT);
    assert.equal(map.occupancy(at(3, 3)), undefined);
  });

  it('treats points beyond maxRange as beams that clear up to maxRange only', () => {
    const map = new OccupancyOctree();
    map.insertScan(SENSOR, [at(3, 0.01), at(9, 0.01)], 12);
    assert.equal(map.isOccupied(at(3, 0.01)), true);
    assert.equal(map.isOccupied(at(9, 0.01)), true);
    const summary = map.insertScan(SENSOR, [at(20, 0.01)], 5);
    assert.deepEqual(summary, { hits: 0, misses: 1 });
    assert.ok((map.logOdds(at(3, 0.01)) ?? 0) < HIT);
    assert.ok(Math.abs((map.logOdds(at(9, 0.01)) ?? 0) - HIT) < 1e-12);
    assert.equal(map.occupancy(at(20, 0.01)), undefined);
  });

  it('updates a voxel at most once per scan, a hit winning over a miss', () => {
    const map = new OccupancyOctree();
    map.insertRay(SENSOR, at(2, 0.01));
    const summary = map.insertScan(SENSOR, [at(2, 0.01), at(2, 0.01), at(4, 0.01)]);
    assert.deepEqual(summary, { hits: 2, misses: 0 });
    assert.ok(Math.abs((map.logOdds(at(2, 0.01)) ?? 0) - 2 * HIT) < 1e-12);
  });

  it('ignores returns outside the mapped cube', () => {
    const map = new OccupancyOctree({ depth: 8 });
    assert.ok(map.extent > 6 && map.extent < 7);
    assert.deepEqual(map.insertRay(SENSOR, at(50, 0)), { hits: 0, misses: 0 });
    assert.equal(map.size, 0);
    assert.equal(map.isOccupied(at(50, 0)), false);
  });

  it('answers box queries as a scan of every voxel would', () => {
    const coordinate = fc.double({ min: -3, max: 3, noNaN: true });
    const point = fc.record({ x: coordinate, y: coordinate, z: coordinate });
    fc.assert(
      fc.property(fc.array(point, { maxLength: 60 }), point, point, (points, corner, other) => {
        const map = new OccupancyOctree({ resolution: 0.1 });
        for (const each of points) map.insertRay(each, each);
        const min = {
          x: Math.min(corner.x, other.x),
          y: Math.min(corner.y, other.y),
          z: Math.min(corner.z, other.z),
        };
        const max = {
          x: Math.max(corner.x, other.x),
          y: Math.max(corner.y, other.y),
          z: Math.max(corner.z, other.z),
        };
        const found = map.occupiedInBox(min, max);
        // A voxel is in the box when it contains a point of the box (voxels are half-open).
        const cell = (value: number) => Math.floor(value / 0.1);
        const within = (value: number, low: number, high: number) =>
          cell(value) >= cell(low) && cell(value) <= cell(high);
        const overlaps = (centre: Vector3) =>
          within(centre.x, min.x, max.x) &&
          within(centre.y, min.y, max.y) &&
          within(centre.z, min.z, max.z);
        const everything = map.occupiedInBox({ x: -10, y: -10, z: -10 }, { x: 10, y: 10, z: 10 });
        assert.equal(everything.length, map.occupiedCount());
        const expected = everything.filter(overlaps);
        assert.equal(found.length, expected.length);
        assert.equal(map.anyOccupiedInBox(min, max), expected.length > 0);
        for (const centre of found) assert.ok(map.isOccupied(centre));
      }),
    );
  });

  it('limits how many voxels a box query returns', () => {
    const map = new OccupancyOctree();
    map.insertScan(
      SENSOR,
      Array.from({ length: 10 }, (_, index) => at(1 + index * 0.1, 0)),
    );
    assert.equal(map.occupiedInBox(at(0, -1, 0), at(3, 1, 1), 4).length, 4);
  });

  it('finds the nearest obstacle as a scan of every voxel would', () => {
    const coordinate = fc.double({ min: -3, max: 3, noNaN: true });
    const point = fc.record({ x: coordinate, y: coordinate, z: coordinate });
    fc.assert(
      fc.property(
        fc.array(point, { maxLength: 60 }),
        point,
        fc.double({ min: 0, max: 6, noNaN: true }),
        (points, query, reach) => {
          const map = new OccupancyOctree({ resolution: 0.1 });
          for (const each of points) map.insertRay(each, each);
          const all = map.occupiedInBox({ x: -10, y: -10, z: -10 }, { x: 10, y: 10, z: 10 });
          const distances = all
            .map((centre) => distanceBetween(centre, query))
            .filter((distance) => distance <= reach);
          const nearest = map.nearestObstacle(query, reach);
          if (distances.length === 0) {
            assert.equal(nearest, undefined);
          } else {
            assert.ok(nearest !== undefined);
            assert.ok(Math.abs(nearest.distance - Math.min(...distances)) < 1e-9);
            assert.ok(Math.abs(distanceBetween(nearest.point, query) - nearest.distance) < 1e-9);
          }
        },
      ),
    );
  });

  it('finds no obstacle in an empty map or beyond maxDistance', () => {
    const map = new OccupancyOctree();
    assert.equal(map.nearestObstacle(SENSOR, 10), undefined);
    map.insertRay(SENSOR, at(3, 0.01));
    assert.equal(map.nearestObstacle(SENSOR, 2), undefined);
    assert.ok(Math.abs((map.nearestObstacle(SENSOR, 4)?.distance ?? 0) - 2.99) < 0.05);
  });

  it('merges maps commutatively in occupancy', () => {
    const cell = fc.integer({ min: -20, max: 20 }).map((value) => value * 0.1 + 0.05);
    const observation = fc.record({ x: cell, y: cell, hit: fc.boolean() });
    const build = (observations: readonly { x: number; y: number; hit: boolean }[]) => {
      const map = new OccupancyOctree({ resolution: 0.1 });
      for (const { x, y, hit } of observations) {
        // A hit marks (x, y); a miss passes through (x, y) on its way to a far point.
        if (hit) map.insertRay({ x: 0.05, y: 0.05, z: 0.05 }, { x, y, z: 0.05 });
        else map.insertRay({ x: x - 5, y, z: 0.05 }, { x: x + 5, y, z: 0.05 }, false);
      }
      return map;
    };
    fc.assert(
      fc.property(
        fc.array(observation, { maxLength: 40 }),
        fc.array(observation, { maxLength: 40 }),
        (first, second) => {
          const left = build(first);
          left.merge(build(second));
          const right = build(second);
          right.merge(build(first));
          assert.deepEqual(
            left.toJSON().voxels.sort(compareVoxels),
            right.toJSON().voxels.sort(compareVoxels),
          );
        },
      ),
    );
  });

  it('sums and clamps log-odds when merging', () => {
    const mine = new OccupancyOctree();
    const theirs = new OccupancyOctree();
    for (let scan = 0; scan < 10; scan += 1) mine.insertRay(SENSOR, at(2, 0.01));
    theirs.insertRay(SENSOR, at(2, 0.01));
    theirs.insertRay(SENSOR, at(-1, 0.01));
    mine.merge(theirs);
    assert.ok(Math.abs((mine.logOdds(at(2, 0.01)) ?? 0) - MAX) < 1e-12);
    assert.ok(Math.abs((mine.logOdds(at(-1, 0.01)) ?? 0) - HIT) < 1e-12);
  });

  it('refuses to merge maps of another resolution or depth', () => {
    const map = new OccupancyOctree();
    assert.throws(
      () => map.merge(new OccupancyOctree({ resolution: 0.1 })),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => map.merge(new OccupancyOctree({ depth: 12 })),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
  });

  it('round-trips through its JSON snapshot', () => {
    const map = new OccupancyOctree({ resolution: 0.1, probabilityHit: 0.8 });
    map.insertScan(SENSOR, [at(1, 1), at(-2, 3), at(0.5, -4, 1.5)]);
    map.insertRay(SENSOR, at(1, 1));
    const copy = OccupancyOctree.fromJSON(JSON.parse(JSON.stringify(map.toJSON())));
    assert.deepEqual(copy.settings, map.settings);
    assert.deepEqual(copy.toJSON(), map.toJSON());
    assert.equal(copy.isOccupied(at(0.5, -4, 1.5)), true);
  });

  it('refuses malformed, out-of-range and oversized snapshots', () => {
    const snapshot = new OccupancyOctree({ depth: 10 }).toJSON();
    const withVoxels = (voxels: unknown) => ({ ...snapshot, voxels });
    assert.throws(
      () => OccupancyOctree.fromJSON({ ...snapshot, format: 'other' }),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => OccupancyOctree.fromJSON(withVoxels([[1024, 0, 0, 1]])),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => OccupancyOctree.fromJSON(withVoxels([[1, 0, 0, 99]])),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => OccupancyOctree.fromJSON(withVoxels([[1.5, 0, 0, 1]])),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => OccupancyOctree.fromJSON(withVoxels('lots')),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(() => OccupancyOctree.fromJSON(null), isKeelError('KEEL_INVALID_ARGUMENT'));
    assert.throws(
      () =>
        OccupancyOctree.fromJSON(
          withVoxels([
            [1, 0, 0, 1],
            [2, 0, 0, 1],
            [3, 0, 0, 1],
          ]),
          { maxVoxels: 2 },
        ),
      isKeelError('KEEL_PAYLOAD_TOO_LARGE'),
    );
    assert.equal(OccupancyOctree.fromJSON(withVoxels([[1, 0, 0, 1]])).size, 1);
  });

  it('fades beliefs toward unknown when decayed, and forgets what has no evidence left', () => {
    const map = new OccupancyOctree();
    map.insertRay(SENSOR, at(2, 0.01));
    map.decay(0.5);
    assert.ok(Math.abs((map.logOdds(at(2, 0.01)) ?? 0) - HIT / 2) < 1e-12);
    map.decay(0.001);
    assert.equal(map.size, 0);
    assert.throws(() => map.decay(0), isKeelError('KEEL_INVALID_ARGUMENT'));
    assert.throws(() => map.decay(1.5), isKeelError('KEEL_INVALID_ARGUMENT'));
  });

  it('refuses inconsistent settings and rays', () => {
    assert.throws(
      () => new OccupancyOctree({ clampingMin: 0.6 }),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => new OccupancyOctree({ probabilityHit: 0.4 }),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => new OccupancyOctree({ resolution: -1 }),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(() => new OccupancyOctree({ depth: 17 }), isKeelError('KEEL_INVALID_ARGUMENT'));
    const map = new OccupancyOctree();
    assert.throws(
      () =>
        map.insertRays({
          origin: SENSOR,
          endpoints: new Float64Array(3),
          hits: new Uint8Array(1),
          count: 2,
        }),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => map.insertRay({ x: Number.NaN, y: 0, z: 0 }, at(1, 1)),
      isKeelError('KEEL_INVALID_ARGUMENT'),
    );
  });

  it('empties completely when cleared', () => {
    const map = new OccupancyOctree();
    map.insertScan(SENSOR, [at(1, 1), at(2, 2)]);
    map.clear();
    assert.equal(map.size, 0);
    assert.equal(map.anyOccupiedInBox(at(-5, -5, -5), at(5, 5, 5)), false);
  });
});

function compareVoxels(left: readonly number[], right: readonly number[]): number {
  for (let index = 0; index < 3; index += 1) {
    const difference = (left[index] ?? 0) - (right[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}
