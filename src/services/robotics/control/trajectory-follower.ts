import { wrapAngle } from '../geometry/quaternion.ts';
import { PidController } from '../hal/pid-controller.ts';

export interface FollowerPose {
  readonly x: number;
  readonly y: number;
  readonly yaw: number;
}

export interface FollowerLimits {
  readonly maxLinear: number;
  readonly maxAngular: number;
  /** A waypoint counts as reached within this distance, m. */
  readonly tolerance?: number;
}

/**
 * Follows a list of waypoints: a heading PID turns the base towards the current waypoint,
 * forward speed falls with the heading error (turn first, then drive) and with the distance
 * left to the last point, and each waypoint is passed once within `tolerance`.
 *
 * @example
 * ```ts
 * const follower = new TrajectoryFollower({ maxLinear: 0.5, maxAngular: 1 });
 * follower.start([{ x: 2, y: 0 }], 0.4);
 * const command = follower.step(pose); // undefined once the last point is reached
 * ```
 */
export class TrajectoryFollower {
  readonly #limits: Required<FollowerLimits>;
  readonly #heading: PidController;
  #points: ReadonlyArray<{ readonly x: number; readonly y: number }> = [];
  #index = 0;
  #maxSpeed = 0;
  #lastStamp: number | undefined;

  constructor(limits: FollowerLimits) {
    this.#limits = { tolerance: 0.15, ...limits };
    this.#heading = new PidController({
      proportional: 2.5,
      integral: 0.1,
      derivative: 0.05,
      outputMin: -limits.maxAngular,
      outputMax: limits.maxAngular,
    });
  }

  start(points: ReadonlyArray<{ readonly x: number; readonly y: number }>, maxSpeed: number): void {
    this.#points = points;
    this.#index = 0;
    this.#maxSpeed = Math.min(maxSpeed, this.#limits.maxLinear);
    this.#heading.reset();
    this.#lastStamp = undefined;
  }

  clear(): void {
    this.#points = [];
    this.#index = 0;
  }

  get waypointIndex(): number {
    return this.#index;
  }

  /** The command for this tick, or `undefined` when the last waypoint is reached (or none). */
  step(
    pose: FollowerPose & { readonly stampMs?: number },
  ): { linear: number; angular: number } | undefined {
    let target = this.#points[this.#index];
    while (
      target !== undefined &&
      Math.hypot(target.x - pose.x, target.y - pose.y) < this.#limits.tolerance
    ) {
      this.#index += 1;
      target = this.#points[this.#index];
    }
    if (target === undefined) return undefined;
    const bearing = Math.atan2(target.y - pose.y, target.x - pose.x);
    const error = wrapAngle(bearing - pose.yaw);
    const stamp = pose.stampMs ?? 0;
    const dtSeconds = this.#lastStamp === undefined ? 0.01 : (stamp - this.#lastStamp) / 1000;
    this.#lastStamp = stamp;
    // The PID sees the heading error as a measurement of -error against a setpoint of 0.
    const angular = this.#heading.update(0, -error, dtSeconds > 0 ? dtSeconds : 0.01);
    const last = this.#points[this.#points.length - 1] ?? target;
    const remaining = Math.hypot(last.x - pose.x, last.y - pose.y);
    const alignment = Math.max(0, Math.cos(error)) ** 4;
    const linear =
      Math.min(this.#maxSpeed, remaining * 0.8 + 0.05) * (Math.abs(error) > 0.6 ? 0 : alignment);
    return { linear, angular };
  }
}
