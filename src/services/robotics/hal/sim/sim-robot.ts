import { z } from 'zod';
import type { HalDriver, LaserScan } from '../hal-drivers.ts';
import { SeededRandom } from './seeded-random.ts';
import { SimArm, SimRelay } from './sim-arm.ts';
import { SimDriveBase, type SimPose } from './sim-drive-base.ts';
import { SimCamera, SimImu, SimLidar, SimOdometry } from './sim-sensors.ts';
import type { SimWorld } from './sim-world.ts';

const positive = z.number().finite().positive();

/** The simulated robot's build: base, arm, relays, sensors and noise. */
export const SimRobotSchema = z.strictObject({
  seed: z.number().int().default(1),
  wheelbase: positive.default(0.4),
  maxWheelSpeed: positive.default(1.5),
  acceleration: positive.default(1.5),
  brakeDeceleration: positive.default(4),
  deadmanMs: positive.default(250),
  radius: positive.default(0.25),
  start: z
    .strictObject({
      x: z.number().finite(),
      y: z.number().finite(),
      yaw: z.number().finite().default(0),
    })
    .optional(),
  arm: z
    .strictObject({
      shoulderHeight: positive.default(0.3),
      upperLength: positive.default(0.3),
      foreLength: positive.default(0.25),
      maxJointSpeed: positive.default(1.5),
    })
    .prefault({}),
  relays: z
    .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/))
    .max(64)
    .default(['lamp']),
  lidar: z
    .strictObject({
      beams: z.number().int().min(8).max(8192).default(360),
      rangeMin: positive.default(0.05),
      rangeMax: positive.default(12),
      rangeNoise: z.number().finite().nonnegative().default(0.01),
    })
    .prefault({}),
  noise: z
    .strictObject({
      wheelSpeedNoise: z.number().finite().nonnegative().default(0.02),
      gyroNoise: z.number().finite().nonnegative().default(0.01),
      gyroBias: z.number().finite().default(0.005),
      accelerometerNoise: z.number().finite().nonnegative().default(0.02),
      compassNoise: z.number().finite().nonnegative().default(0.02),
    })
    .prefault({}),
  /** Battery drain: fraction of a full charge per metre driven and per second idle. */
  battery: z
    .strictObject({
      start: z.number().min(0).max(1).default(1),
      perMetre: z.number().nonnegative().default(0.01),
      perSecond: z.number().nonnegative().default(0.0002),
    })
    .prefault({}),
});

export type SimRobotOptions = z.input<typeof SimRobotSchema>;

/** What the sim robot reports each step (the truth, for tests and the dashboard). */
export interface SimRobotState {
  readonly pose: SimPose;
  readonly linear: number;
  readonly angular: number;
  readonly contacts: number;
  readonly battery: number;
  readonly charging: boolean;
}

/**
 * A whole simulated robot in a sim world: a drive base, a three-joint arm, relays, a LiDAR,
 * a camera, odometry and an IMU, stepped together. Its drivers are ordinary HAL drivers.
 *
 * @example
 * ```ts
 * const robot = new SimRobot(world, { seed: 7 });
 * const hal = new HalRegistry(robot.drivers, () => false);
 * robot.step(0.01, now);
 * ```
 */
export class SimRobot {
  readonly base: SimDriveBase;
  readonly arm: SimArm;
  readonly relays: readonly SimRelay[];
  readonly lidar: SimLidar;
  readonly camera: SimCamera;
  readonly odometry: SimOdometry;
  readonly imu: SimImu;
  readonly #world: SimWorld;
  readonly #options: z.output<typeof SimRobotSchema>;
  #battery: number;
  #lastTravelled = 0;

  constructor(world: SimWorld, options: SimRobotOptions = {}) {
    const parsed = SimRobotSchema.parse(options);
    this.#options = parsed;
    this.#world = world;
    const random = new SeededRandom(parsed.seed);
    const dock = world.description.dock;
    const start = parsed.start ?? (dock === undefined ? { x: 0, y: 0, yaw: 0 } : dock);
    this.base = new SimDriveBase(world, { ...parsed, start });
    const { maxJointSpeed, ...geometry } = parsed.arm;
    this.arm = new SimArm(geometry, maxJointSpeed);
    this.relays = parsed.relays.map((id) => new SimRelay(id));
    this.lidar = new SimLidar(world, this.base, random, parsed.lidar);
    this.camera = new SimCamera(world, this.base, { width: 160, height: 120, fieldOfView: 1.2 });
    this.odometry = new SimOdometry(this.base, random, parsed.noise);
    this.imu = new SimImu(this.base, random, parsed.noise);
    this.#battery = parsed.battery.start;
  }

  get drivers(): HalDriver[] {
    return [this.base, this.arm, ...this.relays, this.lidar, this.camera, this.odometry, this.imu];
  }

  step(dtSeconds: number, nowMs: number): void {
    this.base.step(dtSeconds, nowMs);
    this.arm.step(dtSeconds);
    this.odometry.step(dtSeconds);
    this.imu.step(dtSeconds);
    const travelled = this.base.travelled;
    const { perMetre, perSecond } = this.#options.battery;
    if (this.charging) {
      this.#battery = Math.min(1, this.#battery + 0.05 * dtSeconds);
    } else {
      this.#battery = Math.max(
        0,
        this.#battery - (travelled - this.#lastTravelled) * perMetre - dtSeconds * perSecond,
      );
    }
    this.#lastTravelled = travelled;
  }

  /** Whether the base sits on its dock (within 0.2 m), where the battery charges. */
  get charging(): boolean {
    const dock = this.#world.description.dock;
    if (dock === undefined) return false;
    const pose = this.base.pose;
    return Math.hypot(pose.x - dock.x, pose.y - dock.y) < 0.2 && this.base.readWheels().left === 0;
  }

  scan(nowMs: number): LaserScan {
    return this.lidar.scan(nowMs);
  }

  state(): SimRobotState {
    const wheels = this.base.readWheels();
    return {
      pose: this.base.pose,
      linear: (wheels.left + wheels.right) / 2,
      angular: (wheels.right - wheels.left) / this.base.wheelbase,
      contacts: this.base.contacts,
      battery: this.#battery,
      charging: this.charging,
    };
  }
}
