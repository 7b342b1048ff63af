/**
 * A probabilistic 3D occupancy map in the manner of OctoMap: each voxel holds the log-odds
 * that it is occupied; a return ("hit") adds `logit(probabilityHit)`, a beam passing through
 * ("miss") adds `logit(probabilityMiss)`, and beliefs are clamped to the clamping range so the
 * map can still change its mind. A voxel is occupied above `occupancyThreshold`.
 *
 * How it stays fast. Storage is a {@link LinearOctree}: voxels in one hash map keyed by packed
 * integer indices, and per coarser level a map of child masks, so every query descends only
 * into non-empty space. OctoMap clears free space by walking every cell along every beam —
 * about 150 000 cells for one 720-beam scan at 12 m and 5 cm, far too slow for a 1 ms budget
 * in JavaScript. This map records only space that has been seen occupied, so a beam can change
 * only voxels that are already stored: the beams of a scan descend the mask levels together
 * (ray–box slab tests, each node passing on only the beams that cross it; see
 * `ray-bundle-traversal.ts`) and reach just the stored voxels they pass through. Free space
 * costs almost nothing; the work follows the obstacles near the beams (about 0.4 ms for a
 * 720-beam scan of a furnished room, against about 3 ms for walking every cell with the same
 * hash map: bench/perception.bench.ts). On request it also keeps top-down projections of
 * height bands current (`heightBandProjection`), which the swept-footprint query reads.
 *
 * What that changes from OctoMap, on purpose:
 *  - Never-observed and observed-free space read the same (`occupancy` → undefined). A voxel
 *    whose log-odds misses drive down to the clamping minimum is forgotten, which also bounds
 *    memory to what is occupied or being cleared.
 *  - Each voxel changes at most once per scan (a hit wins over a miss, as in OctoMap's
 *    `insertPointCloud`), and a beam stops clearing a voxel and a half before its return so
 *    grazing beams erode the surface they hit less (`scan-update-planner.ts`).
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Vector3 } from '../geometry/vector3.ts';
import { type HeightBandProjection, HeightBandProjections } from './height-band-projection.ts';
import { LinearOctree, packVoxelKey } from './linear-octree.ts';
import { findNearestLeaf } from './nearest-leaf-search.ts';
import {
  DEFAULT_OCCUPANCY_SETTINGS,
  type OccupancySettings,
  OccupancySettingsSchema,
  type OccupancySnapshot,
  parseOccupancySnapshot,
} from './occupancy-snapshot.ts';
import {
  type InsertSummary,
  type ScanRays,
  ScanUpdatePlanner,
  scanRaysFromPoints,
} from './scan-update-planner.ts';

export type { InsertSummary, ScanRays } from './scan-update-planner.ts';

export interface NearestObstacle {
  /** The centre of the nearest occupied voxel. */
  readonly point: Vector3;
  /** From the query point to that centre, in metres. */
  readonly distance: number;
}

/** Below this magnitude a decayed log-odds is no evidence at all, and the voxel is forgotten. */
const FORGET_MAGNITUDE = 1e-3;

function logit(probability: number): number {
  return Math.log(probability / (1 - probability));
}

/**
 * A probabilistic occupancy octree.
 *
 * @example
 * ```ts
 * const map = new OccupancyOctree({ resolution: 0.05 });
 * map.insertScan({ x: 0, y: 0, z: 0.3 }, wallPoints, 12);
 * map.isOccupied({ x: 2, y: 0, z: 0.3 });
 * map.nearestObstacle({ x: 0, y: 0, z: 0.3 }, 1.5);
 * ```
 */
export class OccupancyOctree {
  readonly settings: OccupancySettings;
  readonly #index: LinearOctree;
  readonly #planner: ScanUpdatePlanner;
  readonly #hitLogOdds: number;
  readonly #missLogOdds: number;
  readonly #minimumLogOdds: number;
  readonly #maximumLogOdds: number;
  readonly #thresholdLogOdds: number;
  /** Kept current on every occupancy change. */
  readonly #projections: HeightBandProjections;

  constructor(settings: Partial<OccupancySettings> = {}) {
    const parsed = OccupancySettingsSchema.safeParse({
      ...DEFAULT_OCCUPANCY_SETTINGS,
      ...settings,
    });
    if (!parsed.success) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'the occupancy octree settings are not valid', {
        details: { issues: parsed.error.issues },
      });
    }
    this.settings = Object.freeze(parsed.data);
    this.#index = new LinearOctree(this.settings.resolution, this.settings.depth);
    this.#planner = new ScanUpdatePlanner(this.#index);
    this.#projections = new HeightBandProjections(this.#index);
    this.#hitLogOdds = logit(this.settings.probabilityHit);
    this.#missLogOdds = logit(this.settings.probabilityMiss);
    this.#minimumLogOdds = logit(this.settings.clampingMin);
    this.#maximumLogOdds = logit(this.settings.clampingMax);
    this.#thresholdLogOdds = logit(this.settings.occupancyThreshold);
  }

  get resolution(): number {
    return this.settings.resolution;
  }

  /** Half the side of the mapped cube, in metres. */
  get extent(): number {
    return this.#index.extent;
  }

  /** How many voxels are stored (occupied, or on their way to being forgotten). */
  get size(): number {
    return this.#index.size;
  }

  /**
   * Inserts one beam: clears the stored voxels it passes through and, when `hit`, marks the
   * endpoint's voxel.
   *
   * @example
   * ```ts
   * map.insertRay(sensorOrigin, returnPoint, true);
   * ```
   */
  insertRay(origin: Vector3, endpoint: Vector3, hit = true): InsertSummary {
    return this.insertRays({
      origin,
      endpoints: new Float64Array([endpoint.x, endpoint.y, endpoint.z]),
      hits: new Uint8Array([hit ? 1 : 0]),
      count: 1,
    });
  }

  /**
   * Inserts a scan of returns from one origin. A point farther than `maxRange` is not a
   * return: its beam clears up to `maxRange` only.
   *
   * @example
   * ```ts
   * map.insertScan(laserOriginInWorld, pointsInWorld, 12);
   * ```
   */
  insertScan(
    origin: Vector3,
    points: readonly Vector3[],
    maxRange = Number.POSITIVE_INFINITY,
  ): InsertSummary {
    return this.insertRays(scanRaysFromPoints(origin, points, maxRange));
  }

  /**
   * Inserts beams prepared by the caller (the scan projector fills these without allocating a
   * point per beam).
   *
   * @example
   * ```ts
   * map.insertRays({ origin, endpoints, hits, count });
   * ```
   */
  insertRays(rays: ScanRays): InsertSummary {
    const plan = this.#planner.plan(rays);
    for (const key of plan.missKeys) this.#update(key, this.#missLogOdds);
    for (let index = 0; index < plan.hitCount; index += 1) {
      this.#update(plan.hitKeys[index] as number, this.#hitLogOdds);
    }
    return { hits: plan.hitCount, misses: plan.missKeys.length };
  }

  /**
   * The probability that the voxel holding `point` is occupied, or undefined when nothing is
   * known of it (never seen occupied, or cleared and forgotten).
   *
   * @example
   * ```ts
   * map.occupancy({ x: 2, y: 0, z: 0.3 }); // 0.7 after one hit
   * ```
   */
  occupancy(point: Vector3): number | undefined {
    const logOdds = this.logOdds(point);
    return logOdds === undefined ? undefined : 1 / (1 + Math.exp(-logOdds));
  }

  /**
   * The stored log-odds of the voxel holding `point`, or undefined.
   *
   * @example
   * ```ts
   * map.logOdds({ x: 2, y: 0, z: 0.3 }); // ≈ 0.847 after one hit
   * ```
   */
  logOdds(point: Vector3): number | undefined {
    const key = this.#index.keyAt(point.x, point.y, point.z);
    return key < 0 ? undefined : this.#index.get(key);
  }

  /**
   * Whether the voxel holding `point` is believed occupied.
   *
   * @example
   * ```ts
   * if (map.isOccupied(target)) replan();
   * ```
   */
  isOccupied(point: Vector3): boolean {
    const logOdds = this.logOdds(point);
    return logOdds !== undefined && logOdds > this.#thresholdLogOdds;
  }

  /**
   * Visits the centre of every occupied voxel containing a point of the closed box `min..max`
   * (voxels are half-open: one whose upper face only touches the box is out); the walk
   * stops when `visit` returns true, and the result says whether it did. Allocates nothing
   * per voxel, for hot paths.
   *
   * @example
   * ```ts
   * map.visitOccupiedInBox(min, max, (x, y, z) => x * x + y * y < 1);
   * ```
   */
  visitOccupiedInBox(
    min: Vector3,
    max: Vector3,
    visit: (x: number, y: number, z: number) => boolean | undefined,
  ): boolean {
    const threshold = this.#thresholdLogOdds;
    return this.#index.visitLeavesInBox(
      min.x,
      min.y,
      min.z,
      max.x,
      max.y,
      max.z,
      (_key, value, x, y, z) => (value > threshold ? visit(x, y, z) : undefined),
    );
  }

  /**
   * Whether any occupied voxel overlaps the closed box.
   *
   * @example
   * ```ts
   * map.anyOccupiedInBox({ x: 1, y: -0.3, z: 0 }, { x: 1.5, y: 0.3, z: 1 });
   * ```
   */
  anyOccupiedInBox(min: Vector3, max: Vector3): boolean {
    return this.visitOccupiedInBox(min, max, () => true);
  }

  /**
   * The centres of the occupied voxels overlapping the closed box, at most `limit` of them.
   *
   * @example
   * ```ts
   * const nearby = map.occupiedInBox({ x: -1, y: -1, z: 0 }, { x: 1, y: 1, z: 2 });
   * ```
   */
  occupiedInBox(min: Vector3, max: Vector3, limit = 100_000): Vector3[] {
    const found: Vector3[] = [];
    this.visitOccupiedInBox(min, max, (x, y, z) => {
      found.push({ x, y, z });
      return found.length >= limit;
    });
    return found;
  }

  /**
   * The occupied voxel whose centre is nearest `point`, within `maxDistance`, or undefined.
   *
   * @example
   * ```ts
   * const clearance = map.nearestObstacle(robotCentre, 2)?.distance ?? 2;
   * ```
   */
  nearestObstacle(point: Vector3, maxDistance: number): NearestObstacle | undefined {
    const threshold = this.#thresholdLogOdds;
    const nearest = findNearestLeaf(
      this.#index,
      point.x,
      point.y,
      point.z,
      maxDistance,
      (value) => value > threshold,
    );
    if (nearest === undefined) return undefined;
    const [i, j, k] = this.#index.unpack(nearest.key);
    return {
      point: { x: this.#index.centreOf(i), y: this.#index.centreOf(j), z: this.#index.centreOf(k) },
      distance: nearest.distance,
    };
  }

  /**
   * How many stored voxels are occupied.
   *
   * @example
   * ```ts
   * map.occupiedCount();
   * ```
   */
  occupiedCount(): number {
    let count = 0;
    for (const [, value] of this.#index.entries()) if (value > this.#thresholdLogOdds) count += 1;
    return count;
  }

  /**
   * The occupied columns of a height band, seen from above, kept current from now on by every
   * change to this map (built from the current voxels on first request).
   *
   * @example
   * ```ts
   * const band = map.heightBandProjection(0.05, 1.5); // what a 1.5 m robot can hit
   * ```
   */
  heightBandProjection(zMin: number, zMax: number): HeightBandProjection {
    const threshold = this.#thresholdLogOdds;
    return this.#projections.get(zMin, zMax, (value) => value > threshold);
  }

  /**
   * Adds another robot's map into this one: log-odds are summed and clamped with this map's
   * settings, so merging A into B and B into A give the same occupancy.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` when the resolutions or depths differ.
   * @example
   * ```ts
   * fleetMap.merge(OccupancyOctree.fromJSON(peerSnapshot));
   * ```
   */
  merge(other: OccupancyOctree): void {
    if (
      other.settings.resolution !== this.settings.resolution ||
      other.settings.depth !== this.settings.depth
    ) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'only maps of the same resolution and depth merge',
        {
          details: {
            resolution: this.settings.resolution,
            otherResolution: other.settings.resolution,
            depth: this.settings.depth,
            otherDepth: other.settings.depth,
          },
        },
      );
    }
    for (const [key, value] of [...other.#index.entries()]) this.#update(key, value);
  }

  /**
   * Moves every belief toward "unknown" by multiplying its log-odds by `factor` (0..1], so
   * old evidence fades; voxels left with no evidence are forgotten.
   *
   * @example
   * ```ts
   * map.decay(0.99); // once a second: a 1 % fade
   * ```
   */
  decay(factor: number): void {
    if (!(factor > 0 && factor <= 1)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'a decay factor must be in (0, 1]', {
        details: { factor },
      });
    }
    for (const [key, value] of [...this.#index.entries()]) {
      const decayed = value * factor;
      this.#store(key, value, Math.abs(decayed) < FORGET_MAGNITUDE ? undefined : decayed);
    }
  }

  clear(): void {
    this.#index.clear();
    this.#projections.clear();
  }

  /**
   * The map as plain JSON, for {@link OccupancyOctree.fromJSON} on another robot.
   *
   * @example
   * ```ts
   * const message = JSON.stringify(map.toJSON());
   * ```
   */
  toJSON(): OccupancySnapshot {
    const voxels: Array<[number, number, number, number]> = [];
    for (const [key, value] of this.#index.entries()) {
      const [i, j, k] = this.#index.unpack(key);
      voxels.push([i, j, k, value]);
    }
    return { format: 'keel.occupancy-octree', version: 1, settings: { ...this.settings }, voxels };
  }

  /**
   * Rebuilds a map from {@link OccupancyOctree.toJSON}'s output, validated and capped.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` for a malformed snapshot, `KEEL_PAYLOAD_TOO_LARGE`
   * over the voxel cap.
   * @example
   * ```ts
   * const peerMap = OccupancyOctree.fromJSON(JSON.parse(message), { maxVoxels: 200_000 });
   * ```
   */
  static fromJSON(value: unknown, options: { readonly maxVoxels?: number } = {}): OccupancyOctree {
    const snapshot = parseOccupancySnapshot(value, options);
    const map = new OccupancyOctree(snapshot.settings);
    for (const [i, j, k, logOdds] of snapshot.voxels) {
      map.#update(packVoxelKey(i, j, k), logOdds);
    }
    return map;
  }

  /** Adds `change` to a voxel's log-odds, clamped; a voxel driven to the floor is forgotten. */
  #update(key: number, change: number): void {
    const previous = this.#index.get(key);
    const value = Math.min(this.#maximumLogOdds, (previous ?? 0) + change);
    this.#store(key, previous, value <= this.#minimumLogOdds ? undefined : value);
  }

  /** Stores (undefined: forgets) a voxel; tells the projections when its occupancy flips. */
  #store(key: number, previous: number | undefined, value: number | undefined): void {
    if (value === undefined) this.#index.delete(key);
    else this.#index.set(key, value);
    if (this.#projections.size === 0) return;
    const threshold = this.#thresholdLogOdds;
    const was = previous !== undefined && previous > threshold;
    const is = value !== undefined && value > threshold;
    if (was !== is) this.#projections.occupancyChanged(key, is);
  }
}
