/**
 * The spatial index under the occupancy octree: a linear (hashed) octree. Leaves live in one
 * {@link VoxelHashMap} keyed by a packed integer voxel key; every coarser level is a hash map
 * from a node's key to an 8-bit mask of which of its children hold at least one leaf. There are
 * no node objects, so inserting a leaf costs a few map writes, and every query prunes empty
 * space by descending the masks from the root, touching only non-empty nodes (box queries
 * here; nearest-neighbour search and ray bundles in their own files).
 *
 * Keys: a voxel's integer indices `(i, j, k)` are `floor(coordinate / resolution) + 2^(depth−1)`,
 * each in `[0, 2^depth)`, so the cube of side `resolution · 2^depth` is centred on the origin.
 * A level-`l` node has indices `(i >> l, j >> l, k >> l)`. Keys pack three 16-bit indices into
 * one safe integer (48 bits), which is why `depth` is at most 16.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { VoxelHashMap } from './voxel-hash-map.ts';

/** The largest depth whose three indices pack into one safe integer. */
export const MAX_OCTREE_DEPTH = 16;

const AXIS_FACTOR = 65_536;
const PLANE_FACTOR = AXIS_FACTOR * AXIS_FACTOR;

/** Called for each leaf a query finds, with the centre of its voxel; `true` stops the query. */
export type LeafVisitor = (
  key: number,
  value: number,
  centreX: number,
  centreY: number,
  centreZ: number,
) => boolean | undefined;

/**
 * Packs voxel indices into a key.
 *
 * @example
 * ```ts
 * packVoxelKey(1, 2, 3) === 1 * 2 ** 32 + 2 * 2 ** 16 + 3; // true
 * ```
 */
export function packVoxelKey(i: number, j: number, k: number): number {
  return i * PLANE_FACTOR + j * AXIS_FACTOR + k;
}

/**
 * A hashed octree of numeric leaf values with per-level occupancy masks.
 *
 * @example
 * ```ts
 * const index = new LinearOctree(0.05, 16);
 * index.set(index.keyAt(1, 2, 0.3), 0.85);
 * index.visitLeavesInBox(0, 0, 0, 2, 3, 1, (key, value) => undefined);
 * ```
 */
export class LinearOctree {
  readonly resolution: number;
  readonly depth: number;
  readonly #half: number;
  readonly #cells: number;
  readonly #leaves = new VoxelHashMap();
  /** `#masks[l]` maps a level-`l` node key to its child mask; index 0 is unused. */
  readonly #masks: VoxelHashMap[];

  constructor(resolution: number, depth: number) {
    if (!(resolution > 0) || !Number.isFinite(resolution)) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'an octree resolution must be a positive number',
        {
          details: { resolution },
        },
      );
    }
    if (!Number.isInteger(depth) || depth < 1 || depth > MAX_OCTREE_DEPTH) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `an octree depth must be 1–${MAX_OCTREE_DEPTH}`,
        {
          details: { depth },
        },
      );
    }
    this.resolution = resolution;
    this.depth = depth;
    this.#cells = 2 ** depth;
    this.#half = this.#cells / 2;
    this.#masks = Array.from({ length: depth + 1 }, () => new VoxelHashMap());
  }

  /** How many leaves are stored. */
  get size(): number {
    return this.#leaves.size;
  }

  /** Half the side of the indexed cube, in metres: coordinates must lie in [−extent, extent). */
  get extent(): number {
    return this.#half * this.resolution;
  }

  /** The voxel index of one coordinate, or −1 outside the indexed cube. */
  indexOf(coordinate: number): number {
    const index = Math.floor(coordinate / this.resolution) + this.#half;
    return index >= 0 && index < this.#cells ? index : -1;
  }

  /** The key of the voxel holding a point, or −1 outside the indexed cube. */
  keyAt(x: number, y: number, z: number): number {
    const i = this.indexOf(x);
    const j = this.indexOf(y);
    const k = this.indexOf(z);
    return i < 0 || j < 0 || k < 0 ? -1 : packVoxelKey(i, j, k);
  }

  /** The centre coordinate of voxel index `index` on one axis. */
  centreOf(index: number): number {
    return (index + 0.5 - this.#half) * this.resolution;
  }

  get(key: number): number | undefined {
    const value = this.#leaves.get(key, Number.NaN);
    return Number.isNaN(value) ? undefined : value;
  }

  /** Stores a leaf value, linking a new leaf into every level's mask. */
  set(key: number, value: number): void {
    if (!this.#leaves.set(key, value)) return;
    let i = Math.floor(key / PLANE_FACTOR);
    let j = Math.floor(key / AXIS_FACTOR) % AXIS_FACTOR;
    let k = key % AXIS_FACTOR;
    for (let level = 1; level <= this.depth; level += 1) {
      const bit = 1 << ((i & 1) | ((j & 1) << 1) | ((k & 1) << 2));
      i >>= 1;
      j >>= 1;
      k >>= 1;
      const masks = this.#masks[level] as VoxelHashMap;
      const parentKey = packVoxelKey(i, j, k);
      const mask = masks.get(parentKey, 0);
      masks.set(parentKey, mask | bit);
      if (mask !== 0) return;
    }
  }

  /** Removes a leaf, unlinking nodes left empty. */
  delete(key: number): boolean {
    if (!this.#leaves.delete(key)) return false;
    let i = Math.floor(key / PLANE_FACTOR);
    let j = Math.floor(key / AXIS_FACTOR) % AXIS_FACTOR;
    let k = key % AXIS_FACTOR;
    for (let level = 1; level <= this.depth; level += 1) {
      const bit = 1 << ((i & 1) | ((j & 1) << 1) | ((k & 1) << 2));
      i >>= 1;
      j >>= 1;
      k >>= 1;
      const masks = this.#masks[level] as VoxelHashMap;
      const parentKey = packVoxelKey(i, j, k);
      const mask = masks.get(parentKey, 0) & ~bit;
      if (mask !== 0) {
        masks.set(parentKey, mask);
        return true;
      }
      masks.delete(parentKey);
    }
    return true;
  }

  clear(): void {
    this.#leaves.clear();
    for (const masks of this.#masks) masks.clear();
  }

  /** Every leaf as `[key, value]`, in insertion order. */
  entries(): IterableIterator<[number, number]> {
    return this.#leaves.entries();
  }

  /** The voxel indices of a key. */
  unpack(key: number): [number, number, number] {
    return [
      Math.floor(key / PLANE_FACTOR),
      Math.floor(key / AXIS_FACTOR) % AXIS_FACTOR,
      key % AXIS_FACTOR,
    ];
  }

  /**
   * Visits every leaf whose voxel contains a point of the closed box (voxels are half-open,
   * `[corner, corner + resolution)`); returns true when a visitor stopped the walk.
   */
  visitLeavesInBox(
    minX: number,
    minY: number,
    minZ: number,
    maxX: number,
    maxY: number,
    maxZ: number,
    visit: LeafVisitor,
  ): boolean {
    if (this.#leaves.size === 0 || minX > maxX || minY > maxY || minZ > maxZ) return false;
    // Work in voxel indices: a node overlaps the box when its index range overlaps the box's.
    const lowI = Math.max(0, Math.floor(minX / this.resolution) + this.#half);
    const lowJ = Math.max(0, Math.floor(minY / this.resolution) + this.#half);
    const lowK = Math.max(0, Math.floor(minZ / this.resolution) + this.#half);
    const highI = Math.min(this.#cells - 1, Math.floor(maxX / this.resolution) + this.#half);
    const highJ = Math.min(this.#cells - 1, Math.floor(maxY / this.resolution) + this.#half);
    const highK = Math.min(this.#cells - 1, Math.floor(maxZ / this.resolution) + this.#half);
    if (lowI > highI || lowJ > highJ || lowK > highK) return false;
    return this.#descendBox(this.depth, 0, 0, 0, lowI, lowJ, lowK, highI, highJ, highK, visit);
  }

  #descendBox(
    level: number,
    i: number,
    j: number,
    k: number,
    lowI: number,
    lowJ: number,
    lowK: number,
    highI: number,
    highJ: number,
    highK: number,
    visit: LeafVisitor,
  ): boolean {
    const mask = this.#masks[level]?.get(packVoxelKey(i, j, k), 0) ?? 0;
    if (mask === 0) return false;
    const childLevel = level - 1;
    for (let bit = 0; bit < 8; bit += 1) {
      if ((mask & (1 << bit)) === 0) continue;
      const childI = (i << 1) | (bit & 1);
      const childJ = (j << 1) | ((bit >> 1) & 1);
      const childK = (k << 1) | ((bit >> 2) & 1);
      if (
        childI << childLevel > highI ||
        (childI + 1) << childLevel <= lowI ||
        childJ << childLevel > highJ ||
        (childJ + 1) << childLevel <= lowJ ||
        childK << childLevel > highK ||
        (childK + 1) << childLevel <= lowK
      ) {
        continue;
      }
      if (childLevel === 0) {
        const key = packVoxelKey(childI, childJ, childK);
        const value = this.#leaves.get(key, 0);
        const stop = visit(
          key,
          value,
          this.centreOf(childI),
          this.centreOf(childJ),
          this.centreOf(childK),
        );
        if (stop === true) return true;
      } else if (
        this.#descendBox(
          childLevel,
          childI,
          childJ,
          childK,
          lowI,
          lowJ,
          lowK,
          highI,
          highJ,
          highK,
          visit,
        )
      ) {
        return true;
      }
    }
    return false;
  }

  /** The child mask of the level-`level` node with indices `(i, j, k)`; 0 when it is empty. */
  maskAt(level: number, i: number, j: number, k: number): number {
    return this.#masks[level]?.get(packVoxelKey(i, j, k), 0) ?? 0;
  }

  /** The value of the leaf with `key`, or `fallback` when there is none (no allocation). */
  valueAt(key: number, fallback: number): number {
    return this.#leaves.get(key, fallback);
  }

  /** The minimum coordinate, on one axis, of the level-`level` node with index `index`. */
  cornerOf(level: number, index: number): number {
    return (index * (1 << level) - this.#half) * this.resolution;
  }
}
