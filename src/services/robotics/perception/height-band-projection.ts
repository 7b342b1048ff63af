/**
 * The occupancy octree seen from above, for one height band: which columns `(i, j)` hold at
 * least one occupied voxel between `zMin` and `zMax`, and how many. A ground robot's collision
 * check only cares about the band it can hit, and a wall 2 m high is 40 voxels per column at
 * 5 cm; asking the projection instead of the 3D map makes the swept-footprint query visit each
 * column once rather than each voxel.
 *
 * The octree keeps its projections up to date itself, on every change of a voxel's occupancy
 * (see `OccupancyOctree.heightBandProjection`), so a projection is never stale. Columns are
 * stored in a {@link LinearOctree} of the same resolution at one fixed layer, which makes it a
 * quadtree with the same pruning.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { LinearOctree, packVoxelKey } from './linear-octree.ts';

/** Projections kept at once; asking for another drops the oldest. */
const MAX_PROJECTIONS = 8;

/**
 * The occupied columns of one height band.
 *
 * @example
 * ```ts
 * const band = map.heightBandProjection(0.05, 1.5);
 * band.visitColumnsInBox(-1, -1, 1, 1, (x, y) => x * x + y * y < 0.25);
 * ```
 */
export class HeightBandProjection {
  readonly zMin: number;
  readonly zMax: number;
  readonly #lowestLayer: number;
  readonly #highestLayer: number;
  /** Occupied voxels per column, at voxel layer `#layer`. */
  readonly #columns: LinearOctree;
  readonly #layer: number;
  readonly #layerZ: number;

  constructor(resolution: number, depth: number, zMin: number, zMax: number) {
    this.zMin = zMin;
    this.zMax = zMax;
    this.#columns = new LinearOctree(resolution, depth);
    // Layers are voxel indices on z: a voxel is in the band when it holds a point of it.
    this.#lowestLayer = Math.max(0, Math.floor(zMin / resolution) + 2 ** (depth - 1));
    this.#highestLayer = Math.min(2 ** depth - 1, Math.floor(zMax / resolution) + 2 ** (depth - 1));
    this.#layer = 2 ** (depth - 1);
    this.#layerZ = this.#columns.centreOf(this.#layer);
  }

  /** How many columns hold an occupied voxel in the band. */
  get size(): number {
    return this.#columns.size;
  }

  /** Whether voxel layer `k` lies in the band. */
  covers(k: number): boolean {
    return k >= this.#lowestLayer && k <= this.#highestLayer;
  }

  /** Counts one more occupied voxel in column `(i, j)`. */
  add(i: number, j: number): void {
    const key = packVoxelKey(i, j, this.#layer);
    this.#columns.set(key, (this.#columns.get(key) ?? 0) + 1);
  }

  /** Counts one fewer; the column goes when it has none left. */
  remove(i: number, j: number): void {
    const key = packVoxelKey(i, j, this.#layer);
    const count = (this.#columns.get(key) ?? 0) - 1;
    if (count > 0) this.#columns.set(key, count);
    else this.#columns.delete(key);
  }

  clear(): void {
    this.#columns.clear();
  }

  /**
   * Visits the centre of every occupied column containing a point of the closed rectangle;
   * the walk stops when `visit` returns true, and the result says whether it did.
   */
  visitColumnsInBox(
    minX: number,
    minY: number,
    maxX: number,
    maxY: number,
    visit: (x: number, y: number) => boolean | undefined,
  ): boolean {
    return this.#columns.visitLeavesInBox(
      minX,
      minY,
      this.#layerZ,
      maxX,
      maxY,
      this.#layerZ,
      (_key, _count, x, y) => visit(x, y),
    );
  }
}

/**
 * The projections an octree keeps current: one per band asked for (at most eight; the oldest
 * goes first).
 *
 * @example
 * ```ts
 * const projections = new HeightBandProjections(index);
 * projections.get(0.05, 1.5, (logOdds) => logOdds > 0);
 * projections.occupancyChanged(key, true);
 * ```
 */
export class HeightBandProjections {
  readonly #index: LinearOctree;
  readonly #byBand = new Map<string, HeightBandProjection>();

  constructor(index: LinearOctree) {
    this.#index = index;
  }

  get size(): number {
    return this.#byBand.size;
  }

  /**
   * The projection of a band, built from the index's leaves that `isOccupied` accepts when
   * first asked for.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` unless `zMin ≤ zMax`, both finite.
   */
  get(zMin: number, zMax: number, isOccupied: (value: number) => boolean): HeightBandProjection {
    const name = `${zMin}:${zMax}`;
    const existing = this.#byBand.get(name);
    if (existing !== undefined) return existing;
    if (!(zMin <= zMax) || !Number.isFinite(zMin) || !Number.isFinite(zMax)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'a height band needs finite zMin ≤ zMax', {
        details: { zMin, zMax },
      });
    }
    const projection = new HeightBandProjection(
      this.#index.resolution,
      this.#index.depth,
      zMin,
      zMax,
    );
    for (const [key, value] of this.#index.entries()) {
      const [i, j, k] = this.#index.unpack(key);
      if (isOccupied(value) && projection.covers(k)) projection.add(i, j);
    }
    if (this.#byBand.size >= MAX_PROJECTIONS) {
      const oldest = this.#byBand.keys().next().value;
      if (oldest !== undefined) this.#byBand.delete(oldest);
    }
    this.#byBand.set(name, projection);
    return projection;
  }

  /** A voxel became occupied (`true`) or stopped being occupied (`false`). */
  occupancyChanged(key: number, occupied: boolean): void {
    const [i, j, k] = this.#index.unpack(key);
    for (const projection of this.#byBand.values()) {
      if (!projection.covers(k)) continue;
      if (occupied) projection.add(i, j);
      else projection.remove(i, j);
    }
  }

  clear(): void {
    for (const projection of this.#byBand.values()) projection.clear();
  }
}
