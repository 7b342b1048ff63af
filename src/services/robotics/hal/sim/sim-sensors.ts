/**
 * The simulated sensors: a ray-cast LiDAR, a first-person camera that renders the sim world,
 * and wheel odometry and an IMU with Gaussian noise (and a gyro bias), all reading the true
 * state of a {@link SimDriveBase}.
 */

import { wrapAngle } from '../../geometry/quaternion.ts';
import { DifferentialDrive } from '../differential-drive.ts';
import {
  type CameraDriver,
  type CameraFrame,
  HAL_SPECIFICATION_VERSION,
  type ImuDriver,
  type ImuReading,
  type LaserScan,
  type LidarDriver,
  type OdometryDriver,
  type OdometryReading,
} from '../hal-drivers.ts';
import type { SeededRandom } from './seeded-random.ts';
import type { SimDriveBase } from './sim-drive-base.ts';
import type { SimWorld } from './sim-world.ts';

export interface SimLidarOptions {
  readonly beams: number;
  readonly rangeMin: number;
  readonly rangeMax: number;
  /** Standard deviation of the range noise, m. */
  readonly rangeNoise: number;
}

/**
 * A 360° planar LiDAR at the base's centre, casting one ray per beam against the world.
 *
 * @example
 * ```ts
 * const lidar = new SimLidar(world, base, random, { beams: 720, rangeMin: 0.05, rangeMax: 12, rangeNoise: 0.01 });
 * lidar.scan(now).ranges.length; // 720
 * ```
 */
export class SimLidar implements LidarDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'lidar';
  readonly id = 'lidar';
  readonly #world: SimWorld;
  readonly #base: SimDriveBase;
  readonly #random: SeededRandom;
  readonly #options: SimLidarOptions;

  constructor(world: SimWorld, base: SimDriveBase, random: SeededRandom, options: SimLidarOptions) {
    this.#world = world;
    this.#base = base;
    this.#random = random;
    this.#options = options;
  }

  scan(nowMs: number): LaserScan {
    const { beams, rangeMin, rangeMax, rangeNoise } = this.#options;
    const pose = this.#base.pose;
    const increment = (2 * Math.PI) / beams;
    const angleMin = -Math.PI;
    const ranges = new Float32Array(beams);
    for (let beam = 0; beam < beams; beam += 1) {
      const distance = this.#world.rayCast(
        pose.x,
        pose.y,
        pose.yaw + angleMin + beam * increment,
        rangeMax,
      );
      ranges[beam] = Number.isFinite(distance)
        ? Math.max(rangeMin, this.#random.gaussian(distance, rangeNoise))
        : Number.POSITIVE_INFINITY;
    }
    return {
      frameId: 'laser',
      stampMs: nowMs,
      angleMin,
      angleIncrement: increment,
      rangeMin,
      rangeMax,
      ranges,
    };
  }
}

/**
 * A forward-facing camera that renders the sim world in first person, one ray per column:
 * an obstacle at distance d fills a column band of height proportional to 1 / d, brighter
 * when nearer, over a dark floor and a light sky.
 *
 * @example
 * ```ts
 * const frame = new SimCamera(world, base, { width: 160, height: 120, fieldOfView: 1.2 }).capture(now);
 * ```
 */
export class SimCamera implements CameraDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'camera';
  readonly id = 'camera';
  readonly #world: SimWorld;
  readonly #base: SimDriveBase;
  readonly #options: { width: number; height: number; fieldOfView: number };
  #frames = 0;

  constructor(
    world: SimWorld,
    base: SimDriveBase,
    options: { width: number; height: number; fieldOfView: number },
  ) {
    this.#world = world;
    this.#base = base;
    this.#options = options;
  }

  capture(nowMs: number): CameraFrame {
    const { width, height, fieldOfView } = this.#options;
    const pose = this.#base.pose;
    const pixels = new Uint8Array(width * height);
    const horizon = height / 2;
    for (let column = 0; column < width; column += 1) {
      const offset = (0.5 - (column + 0.5) / width) * fieldOfView;
      const distance =
        this.#world.rayCast(pose.x, pose.y, pose.yaw + offset, 50) * Math.cos(offset);
      const halfBand = Number.isFinite(distance)
        ? Math.min(horizon, horizon / Math.max(distance, 0.05))
        : 0;
      const shade = Number.isFinite(distance) ? Math.max(40, Math.round(255 - distance * 20)) : 0;
      for (let row = 0; row < height; row += 1) {
        const fromHorizon = row - horizon;
        const value = Math.abs(fromHorizon) < halfBand ? shade : fromHorizon < 0 ? 200 : 30;
        pixels[row * width + column] = value;
      }
    }
    this.#frames += 1;
    return { id: `frame-${this.#frames}`, stampMs: nowMs, width, height, pixels };
  }
}

export interface SimNoise {
  /** Relative noise of each wheel's measured speed. */
  readonly wheelSpeedNoise: number;
  /** Standard deviation of the gyro, rad/s. */
  readonly gyroNoise: number;
  /** Constant gyro bias, rad/s. */
  readonly gyroBias: number;
  readonly accelerometerNoise: number;
  /** Standard deviation of the absolute heading (compass), rad. */
  readonly compassNoise: number;
}

/**
 * Wheel odometry: integrates noisy wheel speeds, so its pose drifts from the truth as a real
 * one does.
 *
 * @example
 * ```ts
 * const odometry = new SimOdometry(base, random, noise);
 * odometry.step(0.01); odometry.read(now);
 * ```
 */
export class SimOdometry implements OdometryDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'odometry';
  readonly id = 'odometry';
  readonly #base: SimDriveBase;
  readonly #random: SeededRandom;
  readonly #noise: SimNoise;
  readonly #kinematics: DifferentialDrive;
  #estimate: Omit<OdometryReading, 'stampMs'>;

  constructor(base: SimDriveBase, random: SeededRandom, noise: SimNoise) {
    this.#base = base;
    this.#random = random;
    this.#noise = noise;
    this.#kinematics = new DifferentialDrive(base.wheelbase);
    const pose = base.pose;
    this.#estimate = { x: pose.x, y: pose.y, yaw: pose.yaw, linear: 0, angular: 0 };
  }

  step(dtSeconds: number): void {
    const wheels = this.#base.readWheels();
    const noisy = (speed: number) =>
      speed * (1 + this.#random.gaussian(0, this.#noise.wheelSpeedNoise));
    const twist = this.#kinematics.toTwist({
      left: noisy(wheels.left),
      right: noisy(wheels.right),
    });
    const yaw = this.#estimate.yaw + twist.angular * dtSeconds;
    this.#estimate = {
      x: this.#estimate.x + twist.linear * Math.cos(this.#estimate.yaw) * dtSeconds,
      y: this.#estimate.y + twist.linear * Math.sin(this.#estimate.yaw) * dtSeconds,
      yaw: wrapAngle(yaw),
      linear: twist.linear,
      angular: twist.angular,
    };
  }

  read(nowMs: number): OdometryReading {
    return { ...this.#estimate, stampMs: nowMs };
  }
}

/**
 * An IMU: the base's true turn rate plus Gaussian noise and a constant bias, and its forward
 * acceleration.
 *
 * @example
 * ```ts
 * new SimImu(base, random, noise).read(now).yawRate;
 * ```
 */
export class SimImu implements ImuDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'imu';
  readonly id = 'imu';
  readonly #base: SimDriveBase;
  readonly #random: SeededRandom;
  readonly #noise: SimNoise;
  readonly #kinematics: DifferentialDrive;
  #lastLinear = 0;
  #acceleration = 0;

  constructor(base: SimDriveBase, random: SeededRandom, noise: SimNoise) {
    this.#base = base;
    this.#random = random;
    this.#noise = noise;
    this.#kinematics = new DifferentialDrive(base.wheelbase);
  }

  step(dtSeconds: number): void {
    if (!(dtSeconds > 0)) return;
    const linear = this.#kinematics.toTwist(this.#base.readWheels()).linear;
    this.#acceleration = (linear - this.#lastLinear) / dtSeconds;
    this.#lastLinear = linear;
  }

  read(nowMs: number): ImuReading {
    const truth = this.#kinematics.toTwist(this.#base.readWheels());
    return {
      stampMs: nowMs,
      yawRate:
        truth.angular + this.#noise.gyroBias + this.#random.gaussian(0, this.#noise.gyroNoise),
      forwardAcceleration: this.#random.gaussian(
        this.#acceleration,
        this.#noise.accelerometerNoise,
      ),
      yaw: this.#random.gaussian(this.#base.pose.yaw, this.#noise.compassNoise),
    };
  }
}
