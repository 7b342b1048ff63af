import type {
  CameraFrame,
  HalDriver,
  ImuReading,
  LaserScan,
  OdometryReading,
} from '../hal/hal-drivers.ts';
import { SimRobot, type SimRobotOptions } from '../hal/sim/sim-robot.ts';
import { SimWorld } from '../hal/sim/sim-world.ts';
import type { LoopBody, LoopBodyState } from './loop-body.ts';

/** The longest physics step, s; a longer tick is stepped in slices. */
const MAX_STEP_SECONDS = 0.05;

/**
 * The simulated robot as the control loop's body: its physics step with the loop.
 *
 * @example
 * ```ts
 * const body = new SimLoopBody(worldDescription, { seed: 7 });
 * ```
 */
export class SimLoopBody implements LoopBody {
  readonly robot: SimRobot;

  constructor(world: unknown, options: SimRobotOptions) {
    this.robot = new SimRobot(new SimWorld(world), options);
  }

  get drivers(): readonly HalDriver[] {
    return this.robot.drivers;
  }

  startPose(): { x: number; y: number; yaw: number } {
    return this.robot.base.pose;
  }

  /**
   * Advances the world by the whole time since the last tick, in slices of at most 50 ms (the
   * physics stays stable). None of it may be dropped: the loop fuses the odometry over the
   * clock's elapsed time, so a world that skipped part of a late tick would fall behind the
   * pose estimate by the distance driven meanwhile.
   */
  step(dtSeconds: number, nowMs: number): void {
    const slices = Math.max(1, Math.ceil(dtSeconds / MAX_STEP_SECONDS));
    const slice = dtSeconds / slices;
    for (let index = slices - 1; index >= 0; index -= 1) {
      this.robot.step(slice, nowMs - index * slice * 1000);
    }
  }

  odometry(nowMs: number): OdometryReading {
    return this.robot.odometry.read(nowMs);
  }

  reportedPose(): undefined {
    return undefined;
  }

  imu(nowMs: number): ImuReading {
    return this.robot.imu.read(nowMs);
  }

  scan(nowMs: number): LaserScan {
    return this.robot.scan(nowMs);
  }

  state(): LoopBodyState {
    const state = this.robot.state();
    return {
      x: state.pose.x,
      y: state.pose.y,
      yaw: state.pose.yaw,
      linear: state.linear,
      angular: state.angular,
      battery: state.battery,
      contacts: state.contacts,
      charging: state.charging,
    };
  }

  capture(nowMs: number): CameraFrame {
    return this.robot.camera.capture(nowMs);
  }
}
