/**
 * Dead reckoning for a ground robot: wheel odometry and an IMU fused into a planar pose and
 * velocities with a complementary filter.
 *
 * Why a complementary filter. The two sensors fail in opposite frequency bands. Wheel
 * odometry's turn rate is biased by slip and by the track-width calibration (a steady error
 * that integrates into unbounded heading drift), while a gyro's yaw rate is accurate from
 * moment to moment; an absolute heading (magnetometer, or an IMU's fused orientation) is noisy
 * and disturbed moment to moment but does not drift. A complementary filter takes each sensor
 * where it is good, with two gains and no noise model to tune or to get wrong, and costs a few
 * multiplications per update, where a Kalman filter would need covariances nobody measured.
 *
 * The gains:
 *  - `gyroWeight` (default 0.98): the turn rate is `gyroWeight · gyro + (1 − gyroWeight) ·
 *    wheels`. Mostly gyro; the small wheel share keeps a sane rate if the gyro saturates.
 *  - `absoluteYawTimeConstantSeconds` τ (default 2 s): with an absolute heading, each update
 *    moves the integrated yaw toward it by `k = dt / (τ + dt)` of the (wrapped) difference:
 *    a first-order low-pass of the absolute heading plus a high-pass of the integrated rate,
 *    crossing over at 1/(2πτ) ≈ 0.08 Hz. A gyro bias `b` then leaves a bounded error ≈ b·τ
 *    instead of one growing as b·t.
 *
 * Forward speed comes from the wheels (an accelerometer integrates too much noise to help).
 * The position integrates with the heading at the middle of each step (second-order accurate
 * on arcs).
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { wrapAngle } from '../geometry/quaternion.ts';
import type { Pose2D } from '../geometry/rigid-transform.ts';

export interface OdometryReading {
  /** Forward speed from the wheels, m/s. */
  readonly linear: number;
  /** Turn rate from the wheels, rad/s. */
  readonly angular: number;
}

export interface ImuReading {
  /** The gyro's rate about +z, rad/s. */
  readonly yawRate: number;
  /** An absolute heading (magnetometer or fused orientation), radians, when there is one. */
  readonly yaw?: number;
}

export interface FusionInput {
  /** When the readings were taken, in milliseconds. */
  readonly stampMs: number;
  readonly odometry: OdometryReading;
  readonly imu?: ImuReading;
}

/** The fused estimate. */
export interface FusedEstimate extends Pose2D {
  readonly stampMs: number | undefined;
  /** Forward speed, m/s. */
  readonly linear: number;
  /** Turn rate, rad/s. */
  readonly angular: number;
}

export interface OdometryImuFusionOptions {
  /** Share of the gyro in the turn rate, 0..1. Default 0.98. */
  readonly gyroWeight?: number;
  /** How slowly the absolute heading pulls the estimate, in seconds (> 0). Default 2. */
  readonly absoluteYawTimeConstantSeconds?: number;
  readonly initialPose?: Pose2D;
}

const DEFAULT_GYRO_WEIGHT = 0.98;
const DEFAULT_ABSOLUTE_YAW_TIME_CONSTANT_SECONDS = 2;

function requireFinite(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${name} must be a finite number`, {
      details: { [name]: value },
    });
  }
  return value;
}

/**
 * A complementary filter over wheel odometry and an IMU.
 *
 * @example
 * ```ts
 * const fusion = new OdometryImuFusion();
 * const estimate = fusion.update({
 *   stampMs: 1_020,
 *   odometry: { linear: 0.4, angular: 0.11 },
 *   imu: { yawRate: 0.1 },
 * });
 * tree.set('odom', 'base_link', planarTransform(estimate.x, estimate.y, estimate.yaw), estimate.stampMs ?? 0);
 * ```
 */
export class OdometryImuFusion {
  readonly #gyroWeight: number;
  readonly #timeConstantSeconds: number;
  #estimate: FusedEstimate;

  constructor(options: OdometryImuFusionOptions = {}) {
    const gyroWeight = requireFinite('gyroWeight', options.gyroWeight ?? DEFAULT_GYRO_WEIGHT);
    if (gyroWeight < 0 || gyroWeight > 1) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'gyroWeight must be between 0 and 1', {
        details: { gyroWeight },
      });
    }
    const timeConstant = requireFinite(
      'absoluteYawTimeConstantSeconds',
      options.absoluteYawTimeConstantSeconds ?? DEFAULT_ABSOLUTE_YAW_TIME_CONSTANT_SECONDS,
    );
    if (timeConstant <= 0) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'absoluteYawTimeConstantSeconds must be positive',
        {
          details: { absoluteYawTimeConstantSeconds: timeConstant },
        },
      );
    }
    this.#gyroWeight = gyroWeight;
    this.#timeConstantSeconds = timeConstant;
    this.#estimate = OdometryImuFusion.#initial(options.initialPose ?? { x: 0, y: 0, yaw: 0 });
  }

  /** The current estimate. */
  get estimate(): FusedEstimate {
    return this.#estimate;
  }

  /**
   * Folds in one set of readings and returns the new estimate. The first call only starts
   * the clock. A stamp not after the previous one (a duplicate or late message) changes
   * nothing.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` when any reading is NaN or infinite; the
   * estimate is then unchanged.
   * @example
   * ```ts
   * fusion.update({ stampMs: now, odometry: wheels, imu: { yawRate: gyroZ, yaw: compass } });
   * ```
   */
  update(input: FusionInput): FusedEstimate {
    const stampMs = requireFinite('stampMs', input.stampMs);
    const linear = requireFinite('odometry.linear', input.odometry.linear);
    const wheelRate = requireFinite('odometry.angular', input.odometry.angular);
    const gyroRate =
      input.imu === undefined ? undefined : requireFinite('imu.yawRate', input.imu.yawRate);
    const absoluteYaw =
      input.imu?.yaw === undefined ? undefined : requireFinite('imu.yaw', input.imu.yaw);
    const angular =
      gyroRate === undefined
        ? wheelRate
        : this.#gyroWeight * gyroRate + (1 - this.#gyroWeight) * wheelRate;
    const previous = this.#estimate;
    if (previous.stampMs === undefined) {
      this.#estimate = { ...previous, stampMs, linear, angular };
      return this.#estimate;
    }
    const dtSeconds = (stampMs - previous.stampMs) / 1000;
    if (!(dtSeconds > 0)) return previous;
    const middleYaw = previous.yaw + (angular * dtSeconds) / 2;
    let yaw = previous.yaw + angular * dtSeconds;
    if (absoluteYaw !== undefined) {
      const gain = dtSeconds / (this.#timeConstantSeconds + dtSeconds);
      yaw += gain * wrapAngle(absoluteYaw - yaw);
    }
    this.#estimate = {
      stampMs,
      x: previous.x + linear * dtSeconds * Math.cos(middleYaw),
      y: previous.y + linear * dtSeconds * Math.sin(middleYaw),
      yaw: wrapAngle(yaw),
      linear,
      angular,
    };
    return this.#estimate;
  }

  /**
   * Starts again from `pose` (after a relocalisation); the next update restarts the clock.
   *
   * @example
   * ```ts
   * fusion.reset({ x: 2, y: 1, yaw: Math.PI / 2 });
   * ```
   */
  reset(pose: Pose2D): void {
    this.#estimate = OdometryImuFusion.#initial(pose);
  }

  static #initial(pose: Pose2D): FusedEstimate {
    return {
      stampMs: undefined,
      x: requireFinite('x', pose.x),
      y: requireFinite('y', pose.y),
      yaw: wrapAngle(requireFinite('yaw', pose.yaw)),
      linear: 0,
      angular: 0,
    };
  }
}
