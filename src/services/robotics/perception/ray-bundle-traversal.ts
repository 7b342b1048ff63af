/**
 * Free-space clearing for the occupancy octree: which stored voxels do the beams of a scan
 * pass through? Walking every cell along every beam (Amanatides–Woo) costs a few hundred
 * thousand cells per scan; this instead descends the {@link LinearOctree}'s mask levels with
 * the whole bundle at once. Each non-empty node passes on only the beams whose segment
 * crosses it (a ray–box slab test), and a node whose child holds every place those beams can
 * be passes them all on untested, so the cost follows the non-empty nodes near the beams, not
 * the length of the beams. A scan's beams arrive in bearing order, so a node's beams stay
 * sorted by bearing and a child seen from the origin under a narrow wedge of bearings tests
 * only the beams inside that wedge (two binary searches) instead of all of them.
 */
import { type LinearOctree, packVoxelKey } from './linear-octree.ts';

/**
 * Boxes are grown by this much (metres) before the slab tests. A beam and a return computed
 * from the same pose land a rounding error either side of a voxel face (a robot at x = 1.0
 * sits exactly on one), and without the slack the beam that should clear that voxel misses it.
 */
export const TOUCH_TOLERANCE = 1e-9;

/**
 * Straight segments that all start at one origin: segment `r` runs from the origin to
 * `origin + direction[r]` (parameter 0..1). A laser scan is one such bundle.
 */
export interface RayBundle {
  readonly originX: number;
  readonly originY: number;
  readonly originZ: number;
  readonly directionX: Float64Array;
  readonly directionY: Float64Array;
  readonly directionZ: Float64Array;
  readonly count: number;
}

/** Below this many rays a node tests them all rather than narrowing them by bearing first. */
const BEARING_SEARCH_MINIMUM = 12;
/** Slack on bearing wedges (in pseudo-angle units, about radians), far above rounding error. */
const BEARING_SLACK = 1e-7;

/**
 * A "diamond angle": a cheap stand-in for `atan2(y, x)` that increases with the true angle
 * over [0, 4) from +x counter-clockwise, so bearings sort and compare without trigonometry.
 */
function pseudoAngle(x: number, y: number): number {
  if (x === 0 && y === 0) return 0;
  if (y >= 0) return x >= 0 ? y / (x + y) : 1 - x / (y - x);
  return x < 0 ? 2 - y / (-x - y) : 3 + x / (x - y);
}

/** `1 / component`, with 0 standing for "parallel to this axis" (no slab crossing). */
function inverseOrZero(component: number): number {
  return component === 0 ? 0 : 1 / component;
}

/**
 * Finds the stored voxels crossed by bundles of segments; it keeps its scratch buffers between
 * bundles, so a scan allocates nothing per node.
 *
 * @example
 * ```ts
 * const traversal = new RayBundleTraversal(index);
 * traversal.visitLeavesCrossedByRays(bundle, (key) => crossed.push(key));
 * ```
 */
export class RayBundleTraversal {
  readonly #index: LinearOctree;
  /** Per-level ray lists. */
  #rayLists: Int32Array[] = [];
  #inverseX = new Float64Array(0);
  #inverseY = new Float64Array(0);
  #inverseZ = new Float64Array(0);
  /** Each ray's bearing in the x–y plane (a pseudo-angle), and whether lists run in its order. */
  #bearings = new Float64Array(0);
  #bearingsSorted = false;
  /**
   * Per level, the part of the current node that the bundle's bounding box covers
   * (min x y z, max x y z): every segment in the node's ray list crosses the node only there.
   */
  readonly #clipRegions: Float64Array;

  constructor(index: LinearOctree) {
    this.#index = index;
    this.#clipRegions = new Float64Array(6 * (index.depth + 1));
  }

  /**
   * Calls `visit` once for every leaf whose voxel at least one segment of the bundle crosses
   * (closed boxes grown by {@link TOUCH_TOLERANCE}). Any order of segments is correct; segments
   * in bearing order (as a scan's are, once round from any start) are faster.
   */
  visitLeavesCrossedByRays(rays: RayBundle, visit: (key: number) => void): void {
    if (rays.count === 0 || this.#index.size === 0) return;
    this.#prepareRays(rays);
    const all = this.#rayLists[this.#index.depth] as Int32Array;
    let minX = rays.originX;
    let minY = rays.originY;
    let minZ = rays.originZ;
    let maxX = minX;
    let maxY = minY;
    let maxZ = minZ;
    // A scan's beams come in bearing order, once round from some start: begin the list there
    // and every list below stays sorted by bearing, ready for binary search.
    const start = this.#bearingsSorted ? this.#sortedStart(rays.count) : 0;
    for (let ray = 0; ray < rays.count; ray += 1) {
      all[ray] = (start + ray) % rays.count;
      const endX = rays.originX + (rays.directionX[ray] ?? 0);
      const endY = rays.originY + (rays.directionY[ray] ?? 0);
      const endZ = rays.originZ + (rays.directionZ[ray] ?? 0);
      minX = Math.min(minX, endX);
      minY = Math.min(minY, endY);
      minZ = Math.min(minZ, endZ);
      maxX = Math.max(maxX, endX);
      maxY = Math.max(maxY, endY);
      maxZ = Math.max(maxZ, endZ);
    }
    const clip = this.#clipRegions;
    const slot = 6 * this.#index.depth;
    clip[slot] = minX;
    clip[slot + 1] = minY;
    clip[slot + 2] = minZ;
    clip[slot + 3] = maxX;
    clip[slot + 4] = maxY;
    clip[slot + 5] = maxZ;
    this.#descendRays(this.#index.depth, 0, 0, 0, all, rays.count, rays, visit);
  }

  #prepareRays(rays: RayBundle): void {
    if (this.#inverseX.length < rays.count) {
      const capacity = Math.max(rays.count, 2 * this.#inverseX.length);
      this.#inverseX = new Float64Array(capacity);
      this.#inverseY = new Float64Array(capacity);
      this.#inverseZ = new Float64Array(capacity);
      this.#bearings = new Float64Array(capacity);
      this.#rayLists = Array.from(
        { length: this.#index.depth + 1 },
        () => new Int32Array(capacity),
      );
    }
    for (let ray = 0; ray < rays.count; ray += 1) {
      this.#inverseX[ray] = inverseOrZero(rays.directionX[ray] ?? 0);
      this.#inverseY[ray] = inverseOrZero(rays.directionY[ray] ?? 0);
      this.#inverseZ[ray] = inverseOrZero(rays.directionZ[ray] ?? 0);
      this.#bearings[ray] = pseudoAngle(rays.directionX[ray] ?? 0, rays.directionY[ray] ?? 0);
    }
    let descents = 0;
    for (let ray = 0; ray < rays.count; ray += 1) {
      const previous = this.#bearings[(ray + rays.count - 1) % rays.count] as number;
      if ((this.#bearings[ray] as number) < previous) descents += 1;
    }
    this.#bearingsSorted = descents <= 1;
  }

  /** Where the bearings, sorted up to a rotation, start: just after their one descent. */
  #sortedStart(count: number): number {
    for (let ray = 1; ray < count; ray += 1) {
      if ((this.#bearings[ray] as number) < (this.#bearings[ray - 1] as number)) return ray;
    }
    return 0;
  }

  /** The first entry in `list[from..to)` whose ray's bearing is at least `bearing`. */
  #firstAtOrAbove(list: Int32Array, from: number, to: number, bearing: number): number {
    let low = from;
    let high = to;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#bearings[list[middle] as number] as number) < bearing) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #descendRays(
    level: number,
    i: number,
    j: number,
    k: number,
    list: Int32Array,
    length: number,
    rays: RayBundle,
    visit: (key: number) => void,
  ): void {
    const index = this.#index;
    const mask = index.maskAt(level, i, j, k);
    if (mask === 0) return;
    const childLevel = level - 1;
    const size = index.resolution * (1 << childLevel);
    const childList = this.#rayLists[childLevel] as Int32Array;
    const inverseX = this.#inverseX;
    const inverseY = this.#inverseY;
    const inverseZ = this.#inverseZ;
    const clip = this.#clipRegions;
    const parentSlot = 6 * level;
    const childSlot = 6 * childLevel;
    const clipMinX = clip[parentSlot] as number;
    const clipMinY = clip[parentSlot + 1] as number;
    const clipMinZ = clip[parentSlot + 2] as number;
    const clipMaxX = clip[parentSlot + 3] as number;
    const clipMaxY = clip[parentSlot + 4] as number;
    const clipMaxZ = clip[parentSlot + 5] as number;
    for (let bit = 0; bit < 8; bit += 1) {
      if ((mask & (1 << bit)) === 0) continue;
      const childI = (i << 1) | (bit & 1);
      const childJ = (j << 1) | ((bit >> 1) & 1);
      const childK = (k << 1) | ((bit >> 2) & 1);
      const minX = index.cornerOf(childLevel, childI) - TOUCH_TOLERANCE;
      const minY = index.cornerOf(childLevel, childJ) - TOUCH_TOLERANCE;
      const minZ = index.cornerOf(childLevel, childK) - TOUCH_TOLERANCE;
      const maxX = minX + size + 2 * TOUCH_TOLERANCE;
      const maxY = minY + size + 2 * TOUCH_TOLERANCE;
      const maxZ = minZ + size + 2 * TOUCH_TOLERANCE;
      if (
        minX > clipMaxX ||
        maxX < clipMinX ||
        minY > clipMaxY ||
        maxY < clipMinY ||
        minZ > clipMaxZ ||
        maxZ < clipMinZ
      ) {
        continue;
      }
      clip[childSlot] = Math.max(minX, clipMinX);
      clip[childSlot + 1] = Math.max(minY, clipMinY);
      clip[childSlot + 2] = Math.max(minZ, clipMinZ);
      clip[childSlot + 3] = Math.min(maxX, clipMaxX);
      clip[childSlot + 4] = Math.min(maxY, clipMaxY);
      clip[childSlot + 5] = Math.min(maxZ, clipMaxZ);
      let passList = list;
      let passLength = length;
      // Every segment in the list crosses the parent inside its clip region (segments lie in
      // the bundle's bounding box), so a child holding that whole region is crossed by all.
      const holdsClip =
        minX <= clipMinX &&
        maxX >= clipMaxX &&
        minY <= clipMinY &&
        maxY >= clipMaxY &&
        minZ <= clipMinZ &&
        maxZ >= clipMaxZ;
      if (!holdsClip) {
        // Slab test of each segment (parameter 0..1) against the child's closed box; the
        // shared origin makes the box's offsets common to every ray.
        const lowX = minX - rays.originX;
        const highX = maxX - rays.originX;
        const lowY = minY - rays.originY;
        const highY = maxY - rays.originY;
        const lowZ = minZ - rays.originZ;
        const highZ = maxZ - rays.originZ;
        passList = childList;
        passLength = 0;
        // Only entries in [firstFrom, firstTo) and [secondFrom, secondTo) can cross the child:
        // the whole list, unless the child's x–y wedge seen from the origin narrows it.
        let firstFrom = 0;
        let firstTo = length;
        let secondFrom = length;
        const secondTo = length;
        if (
          this.#bearingsSorted &&
          length >= BEARING_SEARCH_MINIMUM &&
          (lowX > 0 || highX < 0 || lowY > 0 || highY < 0)
        ) {
          const lowLeft = pseudoAngle(lowX, lowY);
          const lowRight = pseudoAngle(highX, lowY);
          const highLeft = pseudoAngle(lowX, highY);
          const highRight = pseudoAngle(highX, highY);
          if (lowY <= 0 && highY >= 0 && lowX > 0) {
            // The wedge holds +x, where bearings wrap from 4 back to 0: two ranges.
            const upTo = Math.max(highLeft, highRight) + BEARING_SLACK;
            const from = Math.min(lowLeft, lowRight) - BEARING_SLACK;
            firstTo = this.#firstAtOrAbove(list, 0, length, upTo);
            secondFrom = Math.max(firstTo, this.#firstAtOrAbove(list, firstTo, length, from));
          } else {
            const from = Math.min(lowLeft, lowRight, highLeft, highRight) - BEARING_SLACK;
            const upTo = Math.max(lowLeft, lowRight, highLeft, highRight) + BEARING_SLACK;
            firstFrom = this.#firstAtOrAbove(list, 0, length, from);
            firstTo = this.#firstAtOrAbove(list, firstFrom, length, upTo);
          }
        }
        for (let range = 0; range < 2; range += 1) {
          const to = range === 0 ? firstTo : secondTo;
          for (let entry = range === 0 ? firstFrom : secondFrom; entry < to; entry += 1) {
            const ray = list[entry] as number;
            let near = 0;
            let far = 1;
            const inverseRayX = inverseX[ray] as number;
            if (inverseRayX !== 0) {
              const first = lowX * inverseRayX;
              const second = highX * inverseRayX;
              near = Math.max(0, Math.min(first, second));
              far = Math.min(1, Math.max(first, second));
            } else if (lowX > 0 || highX < 0) {
              continue;
            }
            const inverseRayY = inverseY[ray] as number;
            if (inverseRayY !== 0) {
              const first = lowY * inverseRayY;
              const second = highY * inverseRayY;
              if (first < second) {
                if (first > near) near = first;
                if (second < far) far = second;
              } else {
                if (second > near) near = second;
                if (first < far) far = first;
              }
            } else if (lowY > 0 || highY < 0) {
              continue;
            }
            const inverseRayZ = inverseZ[ray] as number;
            if (inverseRayZ !== 0) {
              const first = lowZ * inverseRayZ;
              const second = highZ * inverseRayZ;
              if (first < second) {
                if (first > near) near = first;
                if (second < far) far = second;
              } else {
                if (second > near) near = second;
                if (first < far) far = first;
              }
            } else if (lowZ > 0 || highZ < 0) {
              continue;
            }
            if (near <= far) {
              childList[passLength] = ray;
              passLength += 1;
            }
          }
        }
        if (passLength === 0) continue;
      }
      if (childLevel === 0) {
        visit(packVoxelKey(childI, childJ, childK));
      } else {
        this.#descendRays(childLevel, childI, childJ, childK, passList, passLength, rays, visit);
      }
    }
  }
}
