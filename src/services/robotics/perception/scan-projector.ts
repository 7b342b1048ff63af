/**
 * Turns a planar laser scan into map updates: each beam is placed in the world through the
 * transform tree at the scan's own stamp (so a scan taken while turning lands where it was
 * taken) and inserted into the occupancy octree.
 *
 * Beams follow the ROS `sensor_msgs/LaserScan` conventions: a range below `rangeMin`, NaN or
 * −∞ says nothing and is dropped; +∞ or a range at or beyond `rangeMax` means "no return
 * within range", so the beam clears free space up to `rangeMax` and marks nothing.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { InsertSummary, OccupancyOctree } from './occupancy-octree.ts';
import type { TransformTree } from './transform-tree.ts';

/** The most beams a scan may carry. */
export const MAX_SCAN_BEAMS = 8192;

/** A planar laser scan in its sensor frame (beam `i` at `angleMin + i · angleIncrement`). */
export interface LaserScan {
  readonly frameId: string;
  readonly stampMs: number;
  readonly angleMin: number;
  readonly angleIncrement: number;
  readonly rangeMin: number;
  readonly rangeMax: number;
  readonly ranges: ArrayLike<number>;
}

export interface ScanProjectorOptions {
  readonly transforms: TransformTree;
  readonly octree: OccupancyOctree;
  /** The octree's frame. Default `world`. */
  readonly worldFrame?: string;
}

/** What one scan did. */
export interface ScanProjection extends InsertSummary {
  /** Beams with a return in range. */
  readonly returns: number;
  /** Beams with no return in range (they clear only). */
  readonly noReturns: number;
  /** Beams dropped: NaN, −∞ or below `rangeMin`. */
  readonly dropped: number;
}

function invalid(message: string, details: Record<string, unknown>): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, { details });
}

/**
 * Checks a scan's header and beam count; beam values are judged one by one when projected.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` naming the offending field.
 * @example
 * ```ts
 * validateLaserScan(message); // throws on a NaN angleIncrement or 10 000 beams
 * ```
 */
export function validateLaserScan(scan: LaserScan): void {
  if (typeof scan !== 'object' || scan === null)
    throw invalid('a laser scan must be an object', {});
  if (typeof scan.frameId !== 'string' || scan.frameId.length === 0 || scan.frameId.length > 256) {
    throw invalid('a laser scan needs a frameId of 1–256 characters', { frameId: scan.frameId });
  }
  for (const field of ['stampMs', 'angleMin', 'angleIncrement', 'rangeMin', 'rangeMax'] as const) {
    if (typeof scan[field] !== 'number' || !Number.isFinite(scan[field])) {
      throw invalid(`the laser scan's ${field} must be a finite number`, { [field]: scan[field] });
    }
  }
  if (scan.angleIncrement === 0) throw invalid("the laser scan's angleIncrement cannot be 0", {});
  if (scan.rangeMin < 0 || scan.rangeMax <= scan.rangeMin) {
    throw invalid('a laser scan needs 0 ≤ rangeMin < rangeMax', {
      rangeMin: scan.rangeMin,
      rangeMax: scan.rangeMax,
    });
  }
  const ranges = scan.ranges as ArrayLike<number> | undefined;
  if (typeof ranges !== 'object' || ranges === null || typeof ranges.length !== 'number') {
    throw invalid("the laser scan's ranges must be an array of numbers", {});
  }
  if (ranges.length > MAX_SCAN_BEAMS) {
    throw invalid(`a laser scan may carry at most ${MAX_SCAN_BEAMS} beams`, {
      beams: ranges.length,
      maxBeams: MAX_SCAN_BEAMS,
    });
  }
}

/**
 * Projects laser scans into an occupancy octree.
 *
 * @example
 * ```ts
 * const projector = new ScanProjector({ transforms: tree, octree: map });
 * const { returns, misses } = projector.insert(scan);
 * ```
 */
export class ScanProjector {
  readonly #transforms: TransformTree;
  readonly #octree: OccupancyOctree;
  readonly #worldFrame: string;
  #endpoints = new Float64Array(3 * 1024);
  #hits = new Uint8Array(1024);

  constructor(options: ScanProjectorOptions) {
    this.#transforms = options.transforms;
    this.#octree = options.octree;
    this.#worldFrame = options.worldFrame ?? 'world';
  }

  /**
   * Validates the scan, looks up `world ← scan.frameId` at its stamp and inserts its beams.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` for a malformed scan, a non-numeric range or a
   * stamp the transforms cannot reach without extrapolating; `KEEL_NOT_FOUND` for an unknown
   * frame.
   * @example
   * ```ts
   * projector.insert({ frameId: 'laser', stampMs, angleMin: -Math.PI, angleIncrement: Math.PI / 360,
   *   rangeMin: 0.1, rangeMax: 12, ranges });
   * ```
   */
  insert(scan: LaserScan): ScanProjection {
    validateLaserScan(scan);
    const transform = this.#transforms.lookup(this.#worldFrame, scan.frameId, scan.stampMs);
    const beams = scan.ranges.length;
    if (this.#hits.length < beams) {
      this.#hits = new Uint8Array(beams);
      this.#endpoints = new Float64Array(3 * beams);
    }
    const endpoints = this.#endpoints;
    const hits = this.#hits;
    // The rotation as a matrix once, rather than a quaternion product per beam; only its
    // first two columns matter, beams lying in the sensor's x–y plane.
    const { w, x, y, z } = transform.rotation;
    const xx = 1 - 2 * (y * y + z * z);
    const xy = 2 * (x * y - w * z);
    const yx = 2 * (x * y + w * z);
    const yy = 1 - 2 * (x * x + z * z);
    const zx = 2 * (x * z - w * y);
    const zy = 2 * (y * z + w * x);
    const origin = transform.translation;
    let count = 0;
    let returns = 0;
    let noReturns = 0;
    for (let beam = 0; beam < beams; beam += 1) {
      const range = scan.ranges[beam];
      if (typeof range !== 'number') {
        throw invalid("the laser scan's ranges must all be numbers", { beam, range });
      }
      let distance: number;
      if (range >= scan.rangeMax) {
        distance = scan.rangeMax;
        hits[count] = 0;
        noReturns += 1;
      } else if (range >= scan.rangeMin) {
        distance = range;
        hits[count] = 1;
        returns += 1;
      } else {
        continue; // NaN compares false both ways, −∞ and short ranges are below rangeMin
      }
      const angle = scan.angleMin + beam * scan.angleIncrement;
      const sensorX = distance * Math.cos(angle);
      const sensorY = distance * Math.sin(angle);
      endpoints[3 * count] = origin.x + xx * sensorX + xy * sensorY;
      endpoints[3 * count + 1] = origin.y + yx * sensorX + yy * sensorY;
      endpoints[3 * count + 2] = origin.z + zx * sensorX + zy * sensorY;
      count += 1;
    }
    const summary = this.#octree.insertRays({ origin, endpoints, hits, count });
    return { ...summary, returns, noReturns, dropped: beams - returns - noReturns };
  }
}
