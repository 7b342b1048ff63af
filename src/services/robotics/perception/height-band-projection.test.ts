import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Vector3 } from '../geometry/vector3.ts';
import { OccupancyOctree } from './occupancy-octree.ts';

const SENSOR: Vector3 = { x: 0.01, y: 0.01, z: 0.52 };

function columns(map: OccupancyOctree, zMin: number, zMax: number): string[] {
  const found: string[] = [];
  map.heightBandProjection(zMin, zMax).visitColumnsInBox(-10, -10, 10, 10, (x, y) => {
    found.push(`${x.toFixed(3)},${y.toFixed(3)}`);
    return undefined;
  });
  return found.sort();
}

/** The columns of a band computed from the 3D map itself, as a reference. */
function columnsFromVoxels(map: OccupancyOctree, zMin: number, zMax: number): string[] {
  const found = new Set<string>();
  for (const voxel of map.occupiedInBox({ x: -10, y: -10, z: zMin }, { x: 10, y: 10, z: zMax })) {
    found.add(`${voxel.x.toFixed(3)},${voxel.y.toFixed(3)}`);
  }
  return [...found].sort();
}

describe('HeightBandProjection', () => {
  it('counts a column once however many of its voxels are occupied', () => {
    const map = new OccupancyOctree();
    for (const z of [0.1, 0.2, 0.3, 2]) map.insertRay({ x: 1, y: 1, z }, { x: 1, y: 1, z });
    const band = map.heightBandProjection(0, 1);
    assert.equal(band.size, 1);
    assert.deepEqual(columns(map, 0, 1), ['1.025,1.025']);
    assert.deepEqual(columns(map, 1.5, 2.5), ['1.025,1.025']);
    assert.deepEqual(columns(map, 0.5, 1.5), []);
  });

  it('follows every later change of the map', () => {
    const map = new OccupancyOctree();
    map.insertRay(SENSOR, { x: 2, y: 0.01, z: 0.52 });
    const band = map.heightBandProjection(0, 1);
    assert.equal(band.size, 1);
    map.insertRay(SENSOR, { x: -1, y: 0.01, z: 0.52 });
    assert.equal(band.size, 2);
    // The obstacle at x = 2 moves away; beams to a wall behind it clear it.
    for (let scan = 0; scan < 10; scan += 1) map.insertRay(SENSOR, { x: 5, y: 0.01, z: 0.52 });
    assert.deepEqual(columns(map, 0, 1), ['-0.975,0.025', '5.025,0.025']);
    map.clear();
    assert.equal(band.size, 0);
  });

  it('agrees with the 3D map after any sequence of scans, merges and decays', () => {
    const coordinate = fc.double({ min: -2, max: 2, noNaN: true });
    const height = fc.double({ min: 0, max: 2, noNaN: true });
    const beam = fc.record({ x: coordinate, y: coordinate, z: height, hit: fc.boolean() });
    const step = fc.oneof(
      fc.record({ kind: fc.constant('scan' as const), beams: fc.array(beam, { maxLength: 20 }) }),
      fc.record({ kind: fc.constant('merge' as const), beams: fc.array(beam, { maxLength: 10 }) }),
      fc.record({
        kind: fc.constant('decay' as const),
        factor: fc.double({ min: 0.001, max: 1, noNaN: true }),
      }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
        const map = new OccupancyOctree({ resolution: 0.1, occupancyThreshold: 0.6 });
        map.heightBandProjection(0.3, 1.2);
        for (const each of steps) {
          if (each.kind === 'decay') {
            map.decay(each.factor);
            continue;
          }
          const target = each.kind === 'scan' ? map : new OccupancyOctree({ resolution: 0.1 });
          for (const { x, y, z, hit } of each.beams)
            target.insertRay({ x: 0.05, y: 0.05, z: 0.75 }, { x, y, z }, hit);
          if (target !== map) map.merge(target);
        }
        assert.deepEqual(columns(map, 0.3, 1.2), columnsFromVoxels(map, 0.3, 1.2));
      }),
      { numRuns: 150 },
    );
  });

  it('builds a new band from the voxels already in the map', () => {
    const map = new OccupancyOctree();
    map.insertScan(SENSOR, [
      { x: 1, y: 1, z: 0.52 },
      { x: 1, y: -1, z: 1.52 },
    ]);
    assert.deepEqual(columns(map, 0, 1), ['1.025,1.025']);
    assert.deepEqual(columns(map, 0, 2), ['1.025,-0.975', '1.025,1.025']);
  });

  it('refuses a band with zMin above zMax or not finite', () => {
    const map = new OccupancyOctree();
    const invalid = (error: unknown) =>
      error instanceof KeelError && error.code === 'KEEL_INVALID_ARGUMENT';
    assert.throws(() => map.heightBandProjection(1, 0), invalid);
    assert.throws(() => map.heightBandProjection(Number.NaN, 1), invalid);
  });

  it('keeps serving the same projection for the same band', () => {
    const map = new OccupancyOctree();
    assert.equal(map.heightBandProjection(0, 1), map.heightBandProjection(0, 1));
    for (let band = 0; band < 10; band += 1) map.heightBandProjection(band, band + 1);
    map.insertRay(SENSOR, { x: 1, y: 1, z: 9.5 });
    assert.equal(map.heightBandProjection(9, 10).size, 1);
  });
});
