import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RoboticsSection, toRoboticsConfiguration } from './robotics-configuration.ts';

describe('[robotics] configuration', () => {
  it('refuses a command timeout longer than the collision horizon that judged the command', () => {
    assert.throws(
      () =>
        toRoboticsConfiguration(
          RoboticsSection.parse({
            command_timeout_ms: 2000,
            safety: { collision_horizon_seconds: 1.5 },
          }),
        ),
      { code: 'KEEL_CONFIG_INVALID' },
    );
    assert.equal(
      toRoboticsConfiguration(RoboticsSection.parse({ command_timeout_ms: 1500 })).commandTimeoutMs,
      1500,
    );
  });

  it('needs a rosbridge URL for a rosbridge body, and refuses credentials in it', () => {
    assert.throws(() => toRoboticsConfiguration(RoboticsSection.parse({ body: 'rosbridge' })), {
      code: 'KEEL_CONFIG_INVALID',
    });
    assert.throws(() =>
      RoboticsSection.parse({ body: 'rosbridge', rosbridge_url: 'ws://user:pw@robot:9090' }),
    );
    const configuration = toRoboticsConfiguration(
      RoboticsSection.parse({ body: 'rosbridge', rosbridge_url: 'ws://127.0.0.1:9090' }),
    );
    assert.deepEqual(configuration.body, {
      type: 'rosbridge',
      url: 'ws://127.0.0.1:9090',
      publishHz: 20,
      wheelbase: 0.4,
      maxWheelSpeed: 1.5,
    });
  });

  it('turns the geofence pairs into points and names the MQTT topics after the robot', () => {
    const configuration = toRoboticsConfiguration(
      RoboticsSection.parse({
        robot_id: 'arm-2',
        safety: {
          geofence: [
            [0, 0],
            [4, 0],
            [4, 4],
          ],
        },
        mqtt: { url: 'mqtt://127.0.0.1:1883', agent: 'operator' },
      }),
    );
    assert.deepEqual(configuration.safety.geofence, [
      { x: 0, y: 0 },
      { x: 4, y: 0 },
      { x: 4, y: 4 },
    ]);
    assert.equal(configuration.mqtt?.topicPrefix, 'keel/robots/arm-2');
  });
});
