import type { Logger } from '../../../platform/observability/logger.ts';
import { planarTransform, rigidTransform } from '../geometry/rigid-transform.ts';
import type { LaserScan } from '../hal/hal-drivers.ts';
import { OccupancyOctree } from './occupancy-octree.ts';
import type { FusedEstimate } from './odometry-imu-fusion.ts';
import { ScanProjector } from './scan-projector.ts';
import { TransformTree } from './transform-tree.ts';

/** Where the LiDAR sits on the base: centred, this high, m. */
const LIDAR_HEIGHT = 0.2;

/** How old a pose may be for a motion decision (the motion rules) to rest on it, ms. */
export const POSE_MAX_AGE_MS = 1000;

/** Now, on the clock sensor sweeps are stamped with (epoch ms from the high-resolution clock). */
export function perceptionNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The robot's picture of itself and its surroundings, fed from the body's sensor sweeps: the
 * pose the control loop fused from odometry and IMU at its own rate (a complementary filter,
 * see `odometry-imu-fusion.ts`), sent with each sweep,
 * the transform tree `world → odom → base_link → laser`, and every LiDAR scan projected
 * through it into the occupancy octree, which clears space its beams pass through.
 *
 * @example
 * ```ts
 * const perception = new RobotPerception(logger);
 * body.onSensors((sweep) => perception.ingest(sweep));
 * perception.map().nearestObstacle({ x: 1, y: 0, z: 0.2 }, 3);
 * ```
 */
export class RobotPerception {
  readonly transforms = new TransformTree();
  readonly #octree = new OccupancyOctree();
  readonly #projector: ScanProjector;
  readonly #logger: Logger;
  #estimate: FusedEstimate | undefined;
  #scans = 0;
  #rejected = 0;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.transforms.setStatic('world', 'odom', planarTransform(0, 0, 0));
    this.transforms.setStatic(
      'base_link',
      'laser',
      rigidTransform({ x: 0, y: 0, z: LIDAR_HEIGHT }, { w: 1, x: 0, y: 0, z: 0 }),
    );
    this.#projector = new ScanProjector({ transforms: this.transforms, octree: this.#octree });
  }

  /** Takes one sensor sweep: the pose the control loop fused moves `base_link`; the scan goes in. */
  ingest(sweep: { scan: LaserScan; estimate: FusedEstimate }): void {
    const { estimate } = sweep;
    this.#estimate = estimate;
    // The pose is stamped with the scan's own time: the estimate is the body's pose when the
    // scan reached the loop, and a bridged robot's clock stamps its scans and its odometry
    // at different moments, so looking the scan up at its stamp must not extrapolate.
    this.transforms.set(
      'odom',
      'base_link',
      planarTransform(estimate.x, estimate.y, estimate.yaw),
      sweep.scan.stampMs,
    );
    try {
      this.#projector.insert(sweep.scan);
      this.#scans += 1;
    } catch (error) {
      this.#rejected += 1;
      this.#logger.warn({ err: error }, 'a LiDAR scan could not be projected into the map');
    }
  }

  /**
   * How old the estimate is at `nowMs` (ms on the {@link perceptionNow} clock), `undefined`
   * before the first sweep.
   */
  ageMs(nowMs: number): number | undefined {
    const stampMs = this.#estimate?.stampMs;
    return stampMs === undefined ? undefined : Math.max(0, nowMs - stampMs);
  }

  /** The fused pose and velocity, or `undefined` before the first sweep. */
  estimate(): FusedEstimate | undefined {
    return this.#estimate;
  }

  /**
   * The estimate if it is younger than `maxAgeMs` at `nowMs`; a pose the sensors stopped
   * confirming (a bridge down, a loop gone) is no ground for a motion decision.
   */
  freshEstimate(nowMs: number, maxAgeMs: number): FusedEstimate | undefined {
    const ageMs = this.ageMs(nowMs);
    return ageMs === undefined || ageMs > maxAgeMs ? undefined : this.#estimate;
  }

  map(): OccupancyOctree {
    return this.#octree;
  }

  get statistics(): { scans: number; rejected: number; voxels: number } {
    return { scans: this.#scans, rejected: this.#rejected, voxels: this.#octree.occupiedCount() };
  }

  /**
   * Occupied cells around `(x, y)` within `radius`, on a grid of `cell` metres (one entry per
   * occupied grid cell, at most `limit`): what a planner needs, small enough for a syscall.
   */
  obstaclesAround(
    x: number,
    y: number,
    radius: number,
    cell = 0.2,
    limit = 4000,
  ): Array<[number, number]> {
    const points = this.#octree.occupiedInBox(
      { x: x - radius, y: y - radius, z: 0.02 },
      { x: x + radius, y: y + radius, z: 1.5 },
      limit * 8,
    );
    const seen = new Set<string>();
    const cells: Array<[number, number]> = [];
    for (const point of points) {
      const cellX = Math.round(point.x / cell) * cell;
      const cellY = Math.round(point.y / cell) * cell;
      const key = `${cellX.toFixed(3)},${cellY.toFixed(3)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      cells.push([Number(cellX.toFixed(3)), Number(cellY.toFixed(3))]);
      if (cells.length >= limit) break;
    }
    return cells;
  }
}
