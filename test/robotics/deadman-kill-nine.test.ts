import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DifferentialDrive } from '../../src/services/robotics/hal/differential-drive.ts';
import { SimRobot } from '../../src/services/robotics/hal/sim/sim-robot.ts';
import { SimWorld } from '../../src/services/robotics/hal/sim/sim-world.ts';
import { RosbridgeTestServer } from '../support/rosbridge-test-server.ts';

const COMMANDER = fileURLToPath(new URL('./fixtures/cmd-vel-commander.ts', import.meta.url));

describe('the actuator deadman', { timeout: 60_000 }, () => {
  it('stops the simulated base by itself when the process commanding it is killed with kill -9', async () => {
    await using server = await RosbridgeTestServer.start();
    // The robot side: a sim base behind rosbridge, applying each /cmd_vel it receives, with a
    // 250 ms deadman, as a ROS base driver does.
    const world = new SimWorld({ bounds: { minX: -50, minY: -50, maxX: 50, maxY: 50 } });
    const robot = new SimRobot(world, { start: { x: 0, y: 0, yaw: 0 }, deadmanMs: 250 });
    const kinematics = new DifferentialDrive(robot.base.wheelbase);
    let applied = 0;
    let lastCommandAt = 0;
    const stepper = setInterval(() => {
      const now = Date.now();
      const commands = server.operations({ op: 'publish', topic: '/cmd_vel' });
      for (const operation of commands.slice(applied)) {
        const message = operation.frame.msg as { linear: { x: number }; angular: { z: number } };
        robot.base.doCommand(
          kinematics.toWheels({ linear: message.linear.x, angular: message.angular.z }),
          now,
        );
        lastCommandAt = now;
      }
      applied = commands.length;
      robot.step(0.01, now);
    }, 10);

    const commander = spawn(process.execPath, [COMMANDER, server.url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [first] = (await once(commander.stdout, 'data')) as [Buffer];
      assert.match(first.toString(), /commanding/);
      const deadline = Date.now() + 10_000;
      while (robot.state().linear < 0.35) {
        assert.ok(Date.now() < deadline, 'the base never reached the commanded speed');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }

      commander.kill('SIGKILL');
      await once(commander, 'exit');
      const killedAt = Date.now();
      while (robot.state().linear !== 0 || robot.state().angular !== 0) {
        assert.ok(Date.now() - killedAt < 5000, 'the base kept moving after its commander died');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Stopped by the deadman: no command arrived after the kill, and the stop came after
      // the deadline, not before it.
      assert.ok(lastCommandAt <= killedAt);
      assert.ok(robot.base.deadmanTripped(Date.now()));
      const position = robot.state().pose.x;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(robot.state().pose.x, position, 'and it stays stopped');
    } finally {
      clearInterval(stepper);
      if (commander.exitCode === null && commander.signalCode === null) commander.kill('SIGKILL');
    }
  });
});
