import { wrapAngle } from '../../geometry/quaternion.ts';
import type { WheelSpeeds } from '../differential-drive.ts';
import { DifferentialDrive } from '../differential-drive.ts';
import { type DriveBaseDriver, HAL_SPECIFICATION_VERSION } from '../hal-drivers.ts';
import type { SimWorld } from './sim-world.ts';

export interface SimDriveBaseOptions {
  readonly wheelbase: number;
  readonly maxWheelSpeed: number;
  /** How fast a wheel may change speed under command, m/s². */
  readonly acceleration: number;
  /** How fast the brakes stop a wheel at zero energy or on the deadman, m/s². */
  readonly brakeDeceleration: number;
  /** A command not refreshed within this many ms is dropped and the wheels brake. */
  readonly deadmanMs: number;
  /** The footprint radius used for contact with the world, m. */
  readonly radius: number;
  readonly start: { readonly x: number; readonly y: number; readonly yaw: number };
}

/** The simulated body's true state (what the sensors observe, with their noise). */
export interface SimPose {
  readonly x: number;
  readonly y: number;
  readonly yaw: number;
}

/**
 * A kinematic differential-drive base in a sim world: wheel speeds ramp to their targets
 * within the acceleration limit; a command older than the deadman deadline is dropped and
 * the wheels brake, so a brain (or a node) that stops talking leaves the base stopped. A
 * step that would touch an obstacle does not move the base and counts a contact.
 *
 * @example
 * ```ts
 * const base = new SimDriveBase(world, options);
 * base.doCommand({ left: 0.2, right: 0.2 }, now);
 * base.step(0.01, now + 10);
 * ```
 */
export class SimDriveBase implements DriveBaseDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'drive-base';
  readonly id: string;
  readonly wheelbase: number;
  readonly maxWheelSpeed: number;
  readonly #options: SimDriveBaseOptions;
  readonly #world: SimWorld;
  readonly #kinematics: DifferentialDrive;
  #target: WheelSpeeds = { left: 0, right: 0 };
  #wheels: WheelSpeeds = { left: 0, right: 0 };
  #commandedAt = Number.NEGATIVE_INFINITY;
  #braking = true;
  #pose: SimPose;
  #contacts = 0;
  #travelled = 0;

  constructor(world: SimWorld, options: SimDriveBaseOptions, id = 'base') {
    this.id = id;
    this.#world = world;
    this.#options = options;
    this.wheelbase = options.wheelbase;
    this.maxWheelSpeed = options.maxWheelSpeed;
    this.#kinematics = new DifferentialDrive(options.wheelbase);
    this.#pose = { ...options.start };
  }

  doCommand(wheels: WheelSpeeds, nowMs: number): void {
    const limit = this.maxWheelSpeed;
    this.#target = {
      left: Math.max(-limit, Math.min(limit, wheels.left)),
      right: Math.max(-limit, Math.min(limit, wheels.right)),
    };
    this.#commandedAt = nowMs;
    this.#braking = false;
  }

  doZeroEnergy(): void {
    this.#target = { left: 0, right: 0 };
    this.#braking = true;
  }

  readWheels(): WheelSpeeds {
    return this.#wheels;
  }

  get pose(): SimPose {
    return this.#pose;
  }

  /** Times the base was stopped by touching a wall or an obstacle. */
  get contacts(): number {
    return this.#contacts;
  }

  /** Distance driven, m. */
  get travelled(): number {
    return this.#travelled;
  }

  /** Whether the deadman has dropped the last command (or no command came yet). */
  deadmanTripped(nowMs: number): boolean {
    return nowMs - this.#commandedAt > this.#options.deadmanMs;
  }

  /** Advances the simulation by `dtSeconds`. */
  step(dtSeconds: number, nowMs: number): void {
    if (!(dtSeconds > 0)) return;
    if (!this.#braking && this.deadmanTripped(nowMs)) this.doZeroEnergy();
    const rate = this.#braking ? this.#options.brakeDeceleration : this.#options.acceleration;
    const ramp = (current: number, target: number) => {
      const change = Math.max(-rate * dtSeconds, Math.min(rate * dtSeconds, target - current));
      return current + change;
    };
    this.#wheels = {
      left: ramp(this.#wheels.left, this.#target.left),
      right: ramp(this.#wheels.right, this.#target.right),
    };
    const twist = this.#kinematics.toTwist(this.#wheels);
    const yaw = this.#pose.yaw + twist.angular * dtSeconds;
    const heading = (this.#pose.yaw + yaw) / 2;
    const next = {
      x: this.#pose.x + twist.linear * Math.cos(heading) * dtSeconds,
      y: this.#pose.y + twist.linear * Math.sin(heading) * dtSeconds,
      yaw: wrapAngle(yaw),
    };
    const moved = Math.hypot(next.x - this.#pose.x, next.y - this.#pose.y);
    if (moved > 0 && this.#world.collides(next.x, next.y, this.#options.radius)) {
      if (!this.#world.collides(this.#pose.x, this.#pose.y, this.#options.radius)) {
        this.#contacts += 1;
      }
      this.#wheels = { left: 0, right: 0 };
      this.#pose = { ...this.#pose, yaw: next.yaw };
      return;
    }
    this.#travelled += moved;
    this.#pose = next;
  }
}
