import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { DifferentialDrive, type WheelSpeeds } from '../hal/differential-drive.ts';
import {
  type CameraFrame,
  type DriveBaseDriver,
  HAL_SPECIFICATION_VERSION,
  type HalDriver,
  type ImuReading,
  type LaserScan,
  type OdometryReading,
} from '../hal/hal-drivers.ts';
import type { LoopBody, LoopBodyState } from './loop-body.ts';
import type { OutboundTwist } from './outbound-twist.ts';

/** Odometry older than this is not carried forward: the estimate stops where it was. */
const ODOMETRY_MAX_AGE_MS = 500;

/** What the bridge's I/O thread sends the loop: the robot's odometry and scans. */
export type BridgeInbound =
  | { readonly type: 'odometry'; readonly reading: OdometryReading }
  | { readonly type: 'scan'; readonly scan: LaserScan };

/**
 * A drive base behind a bridge: commands become the twist in the shared outbound slot, which
 * the I/O thread publishes (`/cmd_vel`); zero energy is a zero twist. The base's own driver
 * on the robot enforces its deadman when the twists stop coming.
 */
class OutboundDriveBase implements DriveBaseDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'drive-base';
  readonly id = 'base';
  readonly wheelbase: number;
  readonly maxWheelSpeed: number;
  readonly #outbound: OutboundTwist;
  readonly #kinematics: DifferentialDrive;
  readonly #reported: () => OdometryReading | undefined;

  constructor(
    outbound: OutboundTwist,
    wheelbase: number,
    maxWheelSpeed: number,
    reported: () => OdometryReading | undefined,
  ) {
    this.#outbound = outbound;
    this.wheelbase = wheelbase;
    this.maxWheelSpeed = maxWheelSpeed;
    this.#kinematics = new DifferentialDrive(wheelbase);
    this.#reported = reported;
  }

  doCommand(wheels: WheelSpeeds, nowMs: number): void {
    const twist = this.#kinematics.toTwist(wheels);
    this.#outbound.write(twist.linear, twist.angular, nowMs);
  }

  doZeroEnergy(): void {
    this.#outbound.write(0, 0, performance.timeOrigin + performance.now());
  }

  readWheels(): WheelSpeeds {
    const reading = this.#reported();
    return reading === undefined ? { left: 0, right: 0 } : this.#kinematics.toWheels(reading);
  }
}

/**
 * A robot behind rosbridge as the control loop's body. It has a drive base (commands go out
 * as twists) and a LiDAR (scans come in), plus the robot's own odometry. There is no arm,
 * relay, camera or IMU until the bridge carries them.
 *
 * @example
 * ```ts
 * const body = new RosbridgeLoopBody(inboundPort, OutboundTwist.attach(buffer), { wheelbase: 0.4, maxWheelSpeed: 1.5 });
 * ```
 */
export class RosbridgeLoopBody implements LoopBody {
  readonly drivers: readonly HalDriver[];
  readonly #inbound: MessagePort;
  #odometry: OdometryReading | undefined;
  #odometryAt = Number.NEGATIVE_INFINITY;
  #newPose = false;
  #start: { x: number; y: number; yaw: number } | undefined;
  #scan: LaserScan | undefined;

  constructor(
    inbound: MessagePort,
    outbound: OutboundTwist,
    base: { wheelbase: number; maxWheelSpeed: number },
  ) {
    this.#inbound = inbound;
    this.drivers = [
      new OutboundDriveBase(outbound, base.wheelbase, base.maxWheelSpeed, () => this.#odometry),
    ];
  }

  startPose(): { x: number; y: number; yaw: number } | undefined {
    return this.#start;
  }

  step(): void {
    for (
      let message = receiveMessageOnPort(this.#inbound);
      message !== undefined;
      message = receiveMessageOnPort(this.#inbound)
    ) {
      const inbound = message.message as BridgeInbound;
      if (inbound.type === 'odometry') {
        this.#odometry = inbound.reading;
        this.#odometryAt = performance.timeOrigin + performance.now();
        this.#newPose = true;
        this.#start ??= { x: inbound.reading.x, y: inbound.reading.y, yaw: inbound.reading.yaw };
      } else {
        this.#scan = inbound.scan;
      }
    }
  }

  /** The robot's odometry while it keeps coming: none once it is older than half a second. */
  odometry(nowMs: number): OdometryReading | undefined {
    return nowMs - this.#odometryAt > ODOMETRY_MAX_AGE_MS ? undefined : this.#odometry;
  }

  reportedPose(): { x: number; y: number; yaw: number } | undefined {
    if (!this.#newPose || this.#odometry === undefined) return undefined;
    this.#newPose = false;
    return { x: this.#odometry.x, y: this.#odometry.y, yaw: this.#odometry.yaw };
  }

  imu(): ImuReading | undefined {
    return undefined;
  }

  scan(): LaserScan | undefined {
    const scan = this.#scan;
    this.#scan = undefined;
    return scan;
  }

  state(): LoopBodyState {
    const odometry = this.#odometry;
    return {
      x: odometry?.x ?? 0,
      y: odometry?.y ?? 0,
      yaw: odometry?.yaw ?? 0,
      linear: odometry?.linear ?? 0,
      angular: odometry?.angular ?? 0,
      battery: -1,
      contacts: 0,
      charging: false,
    };
  }

  capture(): CameraFrame {
    throw new KeelError('KEEL_NOT_FOUND', 'this robot has no camera on the bridge');
  }
}
