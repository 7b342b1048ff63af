/**
 * The driver interfaces of Keel's hardware abstraction layer, version `hal-v1`. A driver is
 * written once per device (or per simulator) and registered with a {@link HalRegistry}; only
 * the registry calls the `do*` methods, after the e-stop latch and the intent were checked.
 * Every actuator has `doZeroEnergy()`: the state it must reach on an e-stop, on shutdown and
 * on a fault (motors unpowered and braked, relays open, arm holding or limp).
 */

import type { ArmGeometry, ArmJoints } from './arm-inverse-kinematics.ts';
import type { WheelSpeeds } from './differential-drive.ts';

export const HAL_SPECIFICATION_VERSION = 'hal-v1';

export interface HalDriverBase {
  readonly specificationVersion: typeof HAL_SPECIFICATION_VERSION;
  readonly id: string;
}

export interface DriveBaseDriver extends HalDriverBase {
  readonly kind: 'drive-base';
  readonly wheelbase: number;
  /** Top rim speed of a wheel, m/s. */
  readonly maxWheelSpeed: number;
  /**
   * Sets the wheel speed targets. `nowMs` starts the deadman: a driver stops by itself when
   * no command refreshes it within its deadline.
   */
  doCommand(wheels: WheelSpeeds, nowMs: number): void;
  doZeroEnergy(): void;
  /** The wheel speeds the base reports. */
  readWheels(): WheelSpeeds;
}

export interface ArmDriver extends HalDriverBase {
  readonly kind: 'arm';
  readonly geometry: ArmGeometry;
  doCommandJoints(joints: ArmJoints): void;
  doZeroEnergy(): void;
  readJoints(): ArmJoints;
}

export interface RelayDriver extends HalDriverBase {
  readonly kind: 'relay';
  doSet(state: boolean): void;
  /** Opens the relay (its de-energised state). */
  doZeroEnergy(): void;
  read(): boolean;
}

export interface CameraFrame {
  readonly id: string;
  readonly stampMs: number;
  readonly width: number;
  readonly height: number;
  /** Row-major 8-bit grey levels. */
  readonly pixels: Uint8Array;
}

export interface CameraDriver extends HalDriverBase {
  readonly kind: 'camera';
  capture(nowMs: number): CameraFrame;
}

export interface ImuReading {
  readonly stampMs: number;
  /** Turn rate about the vertical axis, rad/s. */
  readonly yawRate: number;
  /** Forward acceleration, m/s². */
  readonly forwardAcceleration: number;
  /** Absolute heading from a magnetometer or fused orientation, rad, when the IMU has one. */
  readonly yaw?: number;
}

export interface ImuDriver extends HalDriverBase {
  readonly kind: 'imu';
  read(nowMs: number): ImuReading;
}

export interface OdometryReading {
  readonly stampMs: number;
  readonly x: number;
  readonly y: number;
  readonly yaw: number;
  readonly linear: number;
  readonly angular: number;
}

export interface OdometryDriver extends HalDriverBase {
  readonly kind: 'odometry';
  read(nowMs: number): OdometryReading;
}

/** One sweep of a planar LiDAR, in the sensor's own frame. */
export interface LaserScan {
  readonly frameId: string;
  readonly stampMs: number;
  readonly angleMin: number;
  readonly angleIncrement: number;
  readonly rangeMin: number;
  readonly rangeMax: number;
  /** One range per beam, m; `Infinity` where nothing was hit within `rangeMax`. */
  readonly ranges: Float32Array;
}

export interface LidarDriver extends HalDriverBase {
  readonly kind: 'lidar';
  scan(nowMs: number): LaserScan;
}

export type HalDriver =
  | DriveBaseDriver
  | ArmDriver
  | RelayDriver
  | CameraDriver
  | ImuDriver
  | OdometryDriver
  | LidarDriver;

/** Drivers that move or energise something, and so have a zero-energy state. */
export type ActuatorDriver = DriveBaseDriver | ArmDriver | RelayDriver;

export function isActuator(driver: HalDriver): driver is ActuatorDriver {
  return driver.kind === 'drive-base' || driver.kind === 'arm' || driver.kind === 'relay';
}
