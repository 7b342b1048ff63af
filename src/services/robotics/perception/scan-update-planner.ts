/**
 * Which voxels one batch of beams changes, before any log-odds arithmetic: the voxels holding
 * the returns take a hit, and the stored voxels the beams pass through take a miss, each
 * voxel at most once per batch (a hit wins, as in OctoMap's `insertPointCloud`). A beam with a
 * return stops clearing {@link CLEARING_STOP_VOXELS} voxels short of it: a surface lying on a
 * voxel face (a wall at x = 12.00 m) or grazed at a shallow angle spreads its returns over two
 * voxels, and clearing right up to each return would erode the surface it just saw.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Vector3 } from '../geometry/vector3.ts';
import type { LinearOctree } from './linear-octree.ts';
import { RayBundleTraversal } from './ray-bundle-traversal.ts';
import { VoxelHashMap } from './voxel-hash-map.ts';

/** How far short of its return a beam stops clearing, in voxels. */
export const CLEARING_STOP_VOXELS = 1.5;

/**
 * Beams that share one origin, as a scan has: endpoint `r` at `endpoints[3r..3r+2]`; where
 * `hits[r]` is 1 the endpoint is a return, where 0 the beam only clears (no return in range).
 */
export interface ScanRays {
  readonly origin: Vector3;
  readonly endpoints: Float64Array;
  readonly hits: Uint8Array;
  readonly count: number;
}

/** What one insertion changed. */
export interface InsertSummary {
  /** Voxels that took a hit. */
  readonly hits: number;
  /** Stored voxels that a beam passed through and took a miss. */
  readonly misses: number;
}

/**
 * Beams from points: a point farther than `maxRange` is not a return, and its beam is cut
 * to `maxRange`; non-finite points are skipped.
 *
 * @example
 * ```ts
 * map.insertRays(scanRaysFromPoints(sensorOrigin, points, 12));
 * ```
 */
export function scanRaysFromPoints(
  origin: Vector3,
  points: readonly Vector3[],
  maxRange: number,
): ScanRays {
  const endpoints = new Float64Array(points.length * 3);
  const hits = new Uint8Array(points.length);
  let count = 0;
  for (const point of points) {
    const dx = point.x - origin.x;
    const dy = point.y - origin.y;
    const dz = point.z - origin.z;
    const length = Math.sqrt(dx * dx + dy * dy + dz * dz);
    if (!Number.isFinite(length)) continue;
    const scale = length > maxRange ? maxRange / length : 1;
    endpoints[3 * count] = origin.x + dx * scale;
    endpoints[3 * count + 1] = origin.y + dy * scale;
    endpoints[3 * count + 2] = origin.z + dz * scale;
    hits[count] = length > maxRange ? 0 : 1;
    count += 1;
  }
  return { origin, endpoints, hits, count };
}

/** The voxels a batch changes; views of scratch buffers, valid until the next plan. */
export interface ScanUpdatePlan {
  /** Distinct voxel keys holding a return, in `hitKeys[0..hitCount)`. */
  readonly hitKeys: Float64Array;
  readonly hitCount: number;
  /** Distinct stored voxels crossed by a beam and not hit in this batch. */
  readonly missKeys: readonly number[];
}

/**
 * Plans the hits and misses of beam batches against one octree index, reusing its buffers.
 *
 * @example
 * ```ts
 * const planner = new ScanUpdatePlanner(index);
 * const { hitKeys, hitCount, missKeys } = planner.plan({ origin, endpoints, hits, count });
 * ```
 */
export class ScanUpdatePlanner {
  readonly #index: LinearOctree;
  readonly #traversal: RayBundleTraversal;
  #directionX = new Float64Array(0);
  #directionY = new Float64Array(0);
  #directionZ = new Float64Array(0);
  #hitKeys = new Float64Array(0);
  readonly #hitSet = new VoxelHashMap();
  readonly #missKeys: number[] = [];

  constructor(index: LinearOctree) {
    this.#index = index;
    this.#traversal = new RayBundleTraversal(index);
  }

  /**
   * The hits and misses of one batch.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` when the counts and arrays disagree or the
   * origin is not finite.
   * @example
   * ```ts
   * const plan = planner.plan(rays);
   * ```
   */
  plan(rays: ScanRays): ScanUpdatePlan {
    const { origin, endpoints, hits, count } = rays;
    if (
      !(count >= 0) ||
      count > hits.length ||
      3 * count > endpoints.length ||
      !Number.isFinite(origin.x + origin.y + origin.z)
    ) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'the scan rays are inconsistent', {
        details: { count, endpoints: endpoints.length, hits: hits.length, origin },
      });
    }
    this.#ensureCapacity(count);
    const hitKeys = this.#hitKeys;
    const hitSet = this.#hitSet;
    hitSet.clear();
    let hitCount = 0;
    const resolution = this.#index.resolution;
    let segments = 0;
    for (let ray = 0; ray < count; ray += 1) {
      const endX = endpoints[3 * ray] as number;
      const endY = endpoints[3 * ray + 1] as number;
      const endZ = endpoints[3 * ray + 2] as number;
      const dx = endX - origin.x;
      const dy = endY - origin.y;
      const dz = endZ - origin.z;
      const length = Math.sqrt(dx * dx + dy * dy + dz * dz);
      if (!Number.isFinite(length)) continue;
      const isHit = hits[ray] === 1;
      if (isHit) {
        const key = this.#index.keyAt(endX, endY, endZ);
        if (key >= 0 && hitSet.set(key, 1)) {
          hitKeys[hitCount] = key;
          hitCount += 1;
        }
      }
      const clearLength = isHit ? length - CLEARING_STOP_VOXELS * resolution : length;
      if (clearLength <= 0) continue;
      const scale = clearLength / length;
      this.#directionX[segments] = dx * scale;
      this.#directionY[segments] = dy * scale;
      this.#directionZ[segments] = dz * scale;
      segments += 1;
    }
    const missKeys = this.#missKeys;
    missKeys.length = 0;
    this.#traversal.visitLeavesCrossedByRays(
      {
        originX: origin.x,
        originY: origin.y,
        originZ: origin.z,
        directionX: this.#directionX,
        directionY: this.#directionY,
        directionZ: this.#directionZ,
        count: segments,
      },
      (key) => {
        if (!hitSet.has(key)) missKeys.push(key);
      },
    );
    return { hitKeys, hitCount, missKeys };
  }

  #ensureCapacity(count: number): void {
    if (this.#directionX.length >= count) return;
    const capacity = Math.max(count, 2 * this.#directionX.length);
    this.#directionX = new Float64Array(capacity);
    this.#directionY = new Float64Array(capacity);
    this.#directionZ = new Float64Array(capacity);
    this.#hitKeys = new Float64Array(capacity);
  }
}
