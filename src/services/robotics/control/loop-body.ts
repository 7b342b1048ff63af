import type {
  CameraFrame,
  HalDriver,
  ImuReading,
  LaserScan,
  OdometryReading,
} from '../hal/hal-drivers.ts';

/** The body's state as the loop reports it each tick. */
export interface LoopBodyState {
  readonly x: number;
  readonly y: number;
  readonly yaw: number;
  readonly linear: number;
  readonly angular: number;
  /** 0–1, or -1 when the body does not report one. */
  readonly battery: number;
  readonly contacts: number;
  readonly charging: boolean;
}

/**
 * What the control loop drives: its HAL drivers and its sensors. The simulator is one body;
 * a robot behind rosbridge is another. Everything here runs on the loop thread and must not
 * block or wait on I/O.
 */
export interface LoopBody {
  readonly drivers: readonly HalDriver[];
  /** Where the body starts, once known (a bridged robot reports it with its first odometry). */
  startPose(): { x: number; y: number; yaw: number } | undefined;
  /** Advances the body by one tick: the simulator's physics, or the bridge's inbound messages. */
  step(dtSeconds: number, nowMs: number): void;
  odometry(nowMs: number): OdometryReading | undefined;
  /**
   * A pose the robot reported itself since the last call (a bridged robot's own odometry
   * pose), which the loop's estimate adopts; `undefined` when there is none new, and always
   * for the simulator, whose pose the loop integrates from its wheel odometry and IMU.
   */
  reportedPose(): { x: number; y: number; yaw: number } | undefined;
  imu(nowMs: number): ImuReading | undefined;
  /** A LiDAR scan for this sensor tick, or `undefined` when none is new. */
  scan(nowMs: number): LaserScan | undefined;
  state(): LoopBodyState;
  capture(nowMs: number): CameraFrame;
}
