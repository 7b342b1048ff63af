import { KeelError } from '../../../platform/errors/keel-error.ts';

export interface WheelSpeeds {
  /** Left wheel rim speed, m/s. */
  readonly left: number;
  readonly right: number;
}

export interface BodyTwist {
  /** Forward speed, m/s. */
  readonly linear: number;
  /** Turn rate, rad/s, positive to the left. */
  readonly angular: number;
}

/**
 * Differential-drive kinematics for a base whose two driven wheels are `wheelbase` metres
 * apart. `toWheels` can also scale a command down, keeping its curvature, so neither wheel
 * exceeds its top speed (turning on the spot does not silently become a different path).
 *
 * @example
 * ```ts
 * const kinematics = new DifferentialDrive(0.4);
 * kinematics.toWheels({ linear: 0.5, angular: 1 }); // { left: 0.3, right: 0.7 }
 * ```
 */
export class DifferentialDrive {
  readonly wheelbase: number;

  constructor(wheelbase: number) {
    if (!(wheelbase > 0) || !Number.isFinite(wheelbase)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'the wheelbase must be a positive length');
    }
    this.wheelbase = wheelbase;
  }

  toWheels(twist: BodyTwist, maxWheelSpeed = Number.POSITIVE_INFINITY): WheelSpeeds {
    const half = (twist.angular * this.wheelbase) / 2;
    let left = twist.linear - half;
    let right = twist.linear + half;
    const fastest = Math.max(Math.abs(left), Math.abs(right));
    if (fastest > maxWheelSpeed) {
      const scale = maxWheelSpeed / fastest;
      left *= scale;
      right *= scale;
    }
    return { left, right };
  }

  toTwist(wheels: WheelSpeeds): BodyTwist {
    return {
      linear: (wheels.left + wheels.right) / 2,
      angular: (wheels.right - wheels.left) / this.wheelbase,
    };
  }
}
