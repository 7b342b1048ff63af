import { quaternionFromYaw } from '../../src/services/robotics/geometry/quaternion.ts';
import { DifferentialDrive } from '../../src/services/robotics/hal/differential-drive.ts';
import { SimRobot } from '../../src/services/robotics/hal/sim/sim-robot.ts';
import { SimWorld } from '../../src/services/robotics/hal/sim/sim-world.ts';
import { RosbridgeTestServer } from './rosbridge-test-server.ts';

function stamp(epochMs: number): { sec: number; nanosec: number } {
  const sec = Math.floor(epochMs / 1000);
  return { sec, nanosec: Math.floor((epochMs - sec * 1000) * 1_000_000) };
}

/**
 * A ROS robot for tests: a sim robot behind a rosbridge v2 server. Its base driver applies
 * every `/cmd_vel` it receives and stops by itself when they stop coming (a 250 ms deadman, as
 * ROS base drivers have); it publishes `/odom` at 20 Hz and `/scan` at 10 Hz like a real one.
 *
 * @example
 * ```ts
 * await using robot = await RosSimRobot.start(world);
 * // point Keel at robot.url
 * ```
 */
export class RosSimRobot implements AsyncDisposable {
  readonly server: RosbridgeTestServer;
  readonly robot: SimRobot;
  readonly #timers: NodeJS.Timeout[] = [];
  #applied = 0;
  lastCommandAt = 0;

  private constructor(server: RosbridgeTestServer, robot: SimRobot) {
    this.server = server;
    this.robot = robot;
    const kinematics = new DifferentialDrive(robot.base.wheelbase);
    this.#timers.push(
      setInterval(() => {
        const now = Date.now();
        const commands = server.operations({ op: 'publish', topic: '/cmd_vel' });
        for (const operation of commands.slice(this.#applied)) {
          const message = operation.frame.msg as { linear: { x: number }; angular: { z: number } };
          robot.base.doCommand(
            kinematics.toWheels({ linear: message.linear.x, angular: message.angular.z }),
            now,
          );
          this.lastCommandAt = now;
        }
        this.#applied = commands.length;
        robot.step(0.01, now);
      }, 10),
      setInterval(() => this.#publishOdometry(), 50),
      setInterval(() => this.#publishScan(), 100),
    );
  }

  static async start(
    world: unknown,
    options: { readonly port?: number } = {},
  ): Promise<RosSimRobot> {
    const server = await RosbridgeTestServer.start(options);
    const robot = new SimRobot(new SimWorld(world), { deadmanMs: 250, lidar: { beams: 360 } });
    return new RosSimRobot(server, robot);
  }

  get url(): string {
    return this.server.url;
  }

  /** The last `/cmd_vel` the robot received, in ROS fields. */
  lastCommand(): { linear: number; angular: number } | undefined {
    const commands = this.server.operations({ op: 'publish', topic: '/cmd_vel' });
    const message = commands.at(-1)?.frame.msg as
      | { linear: { x: number }; angular: { z: number } }
      | undefined;
    return message === undefined
      ? undefined
      : { linear: message.linear.x, angular: message.angular.z };
  }

  #publishOdometry(): void {
    const now = Date.now();
    const reading = this.robot.odometry.read(now);
    this.server.publish('/odom', {
      header: { stamp: stamp(now), frame_id: 'odom' },
      child_frame_id: 'base_link',
      pose: {
        pose: {
          position: { x: reading.x, y: reading.y, z: 0 },
          orientation: quaternionFromYaw(reading.yaw),
        },
      },
      twist: {
        twist: {
          linear: { x: reading.linear, y: 0, z: 0 },
          angular: { x: 0, y: 0, z: reading.angular },
        },
      },
    });
  }

  #publishScan(): void {
    const now = Date.now();
    const scan = this.robot.scan(now);
    this.server.publish('/scan', {
      header: { stamp: stamp(now), frame_id: 'laser' },
      angle_min: scan.angleMin,
      angle_max: scan.angleMin + scan.angleIncrement * (scan.ranges.length - 1),
      angle_increment: scan.angleIncrement,
      range_min: scan.rangeMin,
      range_max: scan.rangeMax,
      // rosbridge sends non-finite floats as null.
      ranges: Array.from(scan.ranges, (range) => (Number.isFinite(range) ? range : null)),
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await this.server[Symbol.asyncDispose]();
  }
}
