/**
 * Nearest-neighbour search in a {@link LinearOctree}: a depth-first descent of the mask levels
 * that visits children nearest first and skips every node farther than the best leaf so far.
 */
import { type LinearOctree, packVoxelKey } from './linear-octree.ts';

/** A leaf found by {@link findNearestLeaf}. */
export interface NearestLeaf {
  readonly key: number;
  /** From the query point to the leaf's voxel centre, in metres. */
  readonly distance: number;
}

interface NearestSearch {
  bestSquared: number;
  bestKey: number;
}

/**
 * The nearest leaf (by voxel centre) that `accept` takes, within `maxDistance` of the
 * point, or undefined. Children are visited nearest first, so the bound tightens quickly.
 *
 * @example
 * ```ts
 * const nearest = findNearestLeaf(index, 0, 0, 0.3, 2, (logOdds) => logOdds > 0);
 * ```
 */
export function findNearestLeaf(
  index: LinearOctree,
  x: number,
  y: number,
  z: number,
  maxDistance: number,
  accept: (value: number) => boolean,
): NearestLeaf | undefined {
  if (index.size === 0 || !(maxDistance >= 0)) return undefined;
  const search: NearestSearch = { bestSquared: maxDistance * maxDistance, bestKey: -1 };
  descendNearest(index, index.depth, 0, 0, 0, x, y, z, accept, search);
  return search.bestKey < 0
    ? undefined
    : { key: search.bestKey, distance: Math.sqrt(search.bestSquared) };
}

function descendNearest(
  index: LinearOctree,
  level: number,
  i: number,
  j: number,
  k: number,
  x: number,
  y: number,
  z: number,
  accept: (value: number) => boolean,
  search: NearestSearch,
): void {
  const mask = index.maskAt(level, i, j, k);
  if (mask === 0) return;
  const childLevel = level - 1;
  const size = index.resolution * (1 << childLevel);
  const order: number[] = [];
  const distances: number[] = [];
  for (let bit = 0; bit < 8; bit += 1) {
    if ((mask & (1 << bit)) === 0) continue;
    const minX = index.cornerOf(childLevel, (i << 1) | (bit & 1));
    const minY = index.cornerOf(childLevel, (j << 1) | ((bit >> 1) & 1));
    const minZ = index.cornerOf(childLevel, (k << 1) | ((bit >> 2) & 1));
    const dx = Math.max(minX - x, 0, x - minX - size);
    const dy = Math.max(minY - y, 0, y - minY - size);
    const dz = Math.max(minZ - z, 0, z - minZ - size);
    const squared = dx * dx + dy * dy + dz * dz;
    if (squared > search.bestSquared) continue;
    let slot = order.length;
    while (slot > 0 && (distances[slot - 1] ?? 0) > squared) {
      order[slot] = order[slot - 1] ?? 0;
      distances[slot] = distances[slot - 1] ?? 0;
      slot -= 1;
    }
    order[slot] = bit;
    distances[slot] = squared;
  }
  for (let slot = 0; slot < order.length; slot += 1) {
    if ((distances[slot] ?? 0) > search.bestSquared) return;
    const bit = order[slot] ?? 0;
    const childI = (i << 1) | (bit & 1);
    const childJ = (j << 1) | ((bit >> 1) & 1);
    const childK = (k << 1) | ((bit >> 2) & 1);
    if (childLevel > 0) {
      descendNearest(index, childLevel, childI, childJ, childK, x, y, z, accept, search);
      continue;
    }
    const key = packVoxelKey(childI, childJ, childK);
    if (!accept(index.valueAt(key, 0))) continue;
    const squared =
      (index.centreOf(childI) - x) ** 2 +
      (index.centreOf(childJ) - y) ** 2 +
      (index.centreOf(childK) - z) ** 2;
    if (squared < search.bestSquared || (squared === search.bestSquared && search.bestKey < 0)) {
      search.bestSquared = squared;
      search.bestKey = key;
    }
  }
}
