import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LinearOctree, packVoxelKey } from './linear-octree.ts';
import { type RayBundle, RayBundleTraversal, TOUCH_TOLERANCE } from './ray-bundle-traversal.ts';

const RESOLUTION = 0.5;
const DEPTH = 6;
const HALF = 2 ** (DEPTH - 1);

/** Whether the segment origin + t·direction, t ∈ [0, 1], touches the closed box (reference). */
function segmentTouchesBox(
  origin: readonly number[],
  direction: readonly number[],
  low: readonly number[],
  high: readonly number[],
): boolean {
  let near = 0;
  let far = 1;
  for (let axis = 0; axis < 3; axis += 1) {
    const start = origin[axis] ?? 0;
    const step = direction[axis] ?? 0;
    const min = low[axis] ?? 0;
    const max = high[axis] ?? 0;
    if (step === 0) {
      if (start < min || start > max) return false;
      continue;
    }
    const first = (min - start) / step;
    const second = (max - start) / step;
    near = Math.max(near, Math.min(first, second));
    far = Math.min(far, Math.max(first, second));
  }
  return near <= far;
}

function bundleOf(
  origin: readonly number[],
  directions: readonly (readonly number[])[],
): RayBundle {
  return {
    originX: origin[0] ?? 0,
    originY: origin[1] ?? 0,
    originZ: origin[2] ?? 0,
    directionX: Float64Array.from(directions, (direction) => direction[0] ?? 0),
    directionY: Float64Array.from(directions, (direction) => direction[1] ?? 0),
    directionZ: Float64Array.from(directions, (direction) => direction[2] ?? 0),
    count: directions.length,
  };
}

describe('RayBundleTraversal', () => {
  it('visits exactly the stored voxels some segment touches, each once', () => {
    const cell = fc.integer({ min: HALF - 12, max: HALF + 11 });
    const coordinate = fc.double({ min: -6, max: 6, noNaN: true });
    // Whole and half voxels put segments exactly on faces and edges, the awkward cases.
    const snapped = fc.oneof(
      coordinate,
      fc.integer({ min: -12, max: 12 }).map((value) => value * 0.25),
    );
    const point = fc.tuple(snapped, snapped, snapped);
    const direction = fc.oneof(
      point,
      fc.tuple(snapped, snapped).map(([x, y]) => [x, y, 0]),
      fc.tuple(snapped).map(([x]) => [x, 0, 0]),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(cell, cell, cell), { maxLength: 120 }),
        point,
        fc.array(direction, { maxLength: 30 }),
        (voxels, origin, directions) => {
          const index = new LinearOctree(RESOLUTION, DEPTH);
          for (const [i, j, k] of voxels) index.set(packVoxelKey(i, j, k), 1);
          const visited: number[] = [];
          new RayBundleTraversal(index).visitLeavesCrossedByRays(
            bundleOf(origin, directions),
            (key) => {
              visited.push(key);
            },
          );
          const expected = new Set<number>();
          for (const [i, j, k] of voxels) {
            const corner = [
              (i - HALF) * RESOLUTION,
              (j - HALF) * RESOLUTION,
              (k - HALF) * RESOLUTION,
            ];
            const low = corner.map((value) => value - TOUCH_TOLERANCE);
            const high = corner.map((value) => value + RESOLUTION + TOUCH_TOLERANCE);
            if (directions.some((each) => segmentTouchesBox(origin, each, low, high))) {
              expected.add(packVoxelKey(i, j, k));
            }
          }
          assert.equal(visited.length, new Set(visited).size);
          assert.deepEqual(new Set(visited), expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('visits exactly the touched voxels for scan-like bundles narrowed by bearing', () => {
    const cell = fc.integer({ min: HALF - 16, max: HALF + 15 });
    const snapped = fc.integer({ min: -16, max: 16 }).map((value) => value * 0.25);
    const coordinate = fc.oneof(fc.double({ min: -4, max: 4, noNaN: true }), snapped);
    // A scan: beams in bearing order from any start angle (once round at most), of any
    // ranges, level or tilted, some along the axes exactly.
    const scan = fc.record({
      origin: fc.tuple(coordinate, coordinate, coordinate),
      startAngle: fc.oneof(
        fc.double({ min: -Math.PI, max: Math.PI, noNaN: true }),
        fc.constantFrom(-Math.PI, 0, Math.PI / 2),
      ),
      beams: fc.integer({ min: 12, max: 90 }),
      sweep: fc.oneof(
        fc.double({ min: 0.1, max: 2 * Math.PI, noNaN: true }),
        fc.constant(2 * Math.PI),
      ),
      ranges: fc.array(fc.oneof(fc.double({ min: 0, max: 10, noNaN: true }), snapped), {
        minLength: 90,
        maxLength: 90,
      }),
      slope: fc.oneof(fc.constant(0), fc.double({ min: -0.5, max: 0.5, noNaN: true })),
    });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(cell, cell, cell), { maxLength: 150 }),
        scan,
        (voxels, { origin, startAngle, beams, sweep, ranges, slope }) => {
          const index = new LinearOctree(RESOLUTION, DEPTH);
          for (const [i, j, k] of voxels) index.set(packVoxelKey(i, j, k), 1);
          const directions = Array.from({ length: beams }, (_, beam) => {
            const angle = startAngle + (beam * sweep) / beams;
            const range = ranges[beam] ?? 1;
            return [range * Math.cos(angle), range * Math.sin(angle), range * slope];
          });
          const visited = new Set<number>();
          new RayBundleTraversal(index).visitLeavesCrossedByRays(
            bundleOf(origin, directions),
            (key) => {
              visited.add(key);
            },
          );
          const expected = new Set<number>();
          for (const [i, j, k] of voxels) {
            const corner = [
              (i - HALF) * RESOLUTION,
              (j - HALF) * RESOLUTION,
              (k - HALF) * RESOLUTION,
            ];
            const low = corner.map((value) => value - TOUCH_TOLERANCE);
            const high = corner.map((value) => value + RESOLUTION + TOUCH_TOLERANCE);
            if (directions.some((each) => segmentTouchesBox(origin, each, low, high))) {
              expected.add(packVoxelKey(i, j, k));
            }
          }
          assert.deepEqual(visited, expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reuses its buffers for a bigger bundle after a smaller one', () => {
    const index = new LinearOctree(RESOLUTION, DEPTH);
    index.set(index.keyAt(3.2, 0.1, 0.1), 1);
    const traversal = new RayBundleTraversal(index);
    const crossed: number[] = [];
    traversal.visitLeavesCrossedByRays(bundleOf([0, 0, 0], [[1, 0, 0]]), (key) =>
      crossed.push(key),
    );
    assert.equal(crossed.length, 0);
    const many = Array.from({ length: 50 }, (_, beam) => [5, (beam - 25) * 0.01, 0.1]);
    traversal.visitLeavesCrossedByRays(bundleOf([0, 0, 0.1], many), (key) => crossed.push(key));
    assert.deepEqual(crossed, [index.keyAt(3.2, 0.1, 0.1)]);
  });
});
