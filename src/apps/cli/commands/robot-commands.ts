import type { Command } from 'commander';
import type { RobotStatus } from '../../../services/robotics/robot-service.ts';
import { action, type CommonOptions, EXIT_OK, withCommonOptions } from '../cli-support.ts';
import { connectToNode } from './control-connection.ts';

function parseSpeed(value: string): number {
  const speed = Number(value);
  if (!Number.isFinite(speed)) throw new Error(`${value} is not a number`);
  return speed;
}

/**
 * Adds `keel estop` (engage; `--release` to release, an audited operator action) and
 * `keel robot status|teleop` to the program.
 */
export function registerRobotCommands(program: Command): void {
  withCommonOptions(
    program
      .command('estop')
      .description(
        'engage the robot’s emergency stop: every actuator to zero energy, every motion refused. With --release, release it (audited; see docs/robotics.md for the recovery procedure first)',
      )
      .option('--release', 'release the e-stop instead of engaging it')
      .option('--note <text>', 'why (kept in the audit log)'),
  ).action(
    action(async ({ output }, options: CommonOptions & { release?: boolean; note?: string }) => {
      await using client = await connectToNode(output, options);
      const result = (await client.request('robot.estop', {
        release: options.release === true,
        ...(options.note === undefined ? {} : { note: options.note }),
      })) as { engaged: boolean; changed: boolean };
      if (output.json) output.data(result);
      else if (options.release === true) {
        output.status(
          'ok',
          result.changed
            ? 'e-stop released: the robot stays still until it is commanded'
            : 'the e-stop was not engaged',
        );
      } else {
        output.status(
          'ok',
          result.changed
            ? 'E-STOP ENGAGED: actuators at zero energy'
            : 'the e-stop was already engaged',
        );
      }
      return EXIT_OK;
    }),
  );

  const robot = program.command('robot').description('the robot this node drives');
  withCommonOptions(
    robot.command('status').description('e-stop, pose, speed, battery and loop timing'),
  ).action(
    action(async ({ output }, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const status = (await client.request('robot.status', {})) as RobotStatus;
      if (output.json) {
        output.data(status);
        return EXIT_OK;
      }
      const estop = status.estop.engaged ? `ENGAGED (${status.estop.reason})` : 'released';
      output.line(`${status.robotId}`);
      output.line(`  e-stop    ${estop}`);
      if (status.pose !== null) {
        output.line(
          `  pose      x ${status.pose.x.toFixed(2)} m, y ${status.pose.y.toFixed(2)} m, yaw ${status.pose.yaw.toFixed(2)} rad`,
        );
      }
      if (status.body !== undefined) {
        output.line(
          `  speed     ${status.body.linear.toFixed(2)} m/s, ${status.body.angular.toFixed(2)} rad/s`,
        );
        output.line(
          status.body.battery < 0
            ? '  battery   not reported by this body'
            : `  battery   ${Math.round(status.body.battery * 100)}%${status.body.charging === 1 ? ' (charging)' : ''}`,
        );
        output.line(
          `  loop      ${status.rateHz} Hz, ${status.body.ticks} ticks, ${status.body.overruns} overruns; ${status.scheduling}`,
        );
      }
      if (status.bridge !== undefined) output.line(`  rosbridge ${status.bridge}`);
      if (status.map !== undefined) {
        output.line(
          `  map       ${status.map.voxels} occupied voxels from ${status.map.scans} scans`,
        );
      }
      return EXIT_OK;
    }),
  );

  withCommonOptions(
    robot
      .command('teleop <linear> <angular>')
      .description(
        'drive the robot yourself (m/s, rad/s); AI motion is suspended for the manual-override window',
      )
      .allowUnknownOption(false),
  ).action(
    action(async ({ output }, linear: string, angular: string, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const status = (await client.request('robot.teleop', {
        linear: parseSpeed(linear),
        angular: parseSpeed(angular),
      })) as RobotStatus;
      if (output.json) output.data(status);
      else
        output.status(
          'ok',
          `teleop: AI motion suspended until ${new Date(status.manualOverrideUntil).toISOString()}`,
        );
      return EXIT_OK;
    }),
  );
}
