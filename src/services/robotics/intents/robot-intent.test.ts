import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_TRAJECTORY_POINTS,
  parseRobotIntent,
  ROBOT_ACTIONS,
  robotIntentToSyscall,
} from './robot-intent.ts';

function invalidField(value: unknown): unknown {
  try {
    parseRobotIntent(value);
  } catch (error) {
    assert.equal((error as { code?: string }).code, 'KEEL_INVALID_ARGUMENT');
    return (error as { details: { field: unknown } }).details.field;
  }
  return assert.fail('expected the intent to be refused');
}

describe('robot intents', () => {
  it('names all eight actions', () => {
    assert.deepEqual(
      [...ROBOT_ACTIONS].sort(),
      [
        'AskHuman',
        'BroadcastFleet',
        'Drive',
        'FollowTrajectory',
        'MessagePeer',
        'MoveEndEffector',
        'PostTask',
        'TriggerRelay',
      ].sort(),
    );
  });

  it('maps each action to the syscall that is also its capability', () => {
    const cases: Array<[unknown, string, string]> = [
      [{ action: 'Drive', payload: { linear: 0.2, angular: -0.1 } }, 'hal.drive', 'base'],
      [
        { action: 'FollowTrajectory', payload: { points: [{ x: 1, y: 2 }], maxSpeed: 0.3 } },
        'hal.drive',
        'trajectory',
      ],
      [{ action: 'MoveEndEffector', payload: { x: 0.1, y: 0, z: 0.2 } }, 'hal.arm', 'arm'],
      [{ action: 'TriggerRelay', payload: { relayId: 'lamp', state: true } }, 'hal.relay', 'lamp'],
      [{ action: 'AskHuman', payload: { question: 'Which door?' } }, 'hitl', 'operator'],
      [
        { action: 'MessagePeer', payload: { robotId: 'rover-2', message: 'hi' } },
        'fleet.message',
        'rover-2',
      ],
      [{ action: 'BroadcastFleet', payload: { message: 'hi' } }, 'fleet.message', 'broadcast'],
      [
        { action: 'PostTask', payload: { title: 'Inspect', description: 'bay 3' } },
        'fleet.tasks',
        'board',
      ],
    ];
    for (const [value, kind, resource] of cases) {
      const syscall = robotIntentToSyscall(parseRobotIntent(value));
      assert.equal(syscall.kind, kind);
      assert.equal(syscall.resource, resource);
    }
  });

  it('refuses non-finite speeds, unknown actions and extra fields with the field named', () => {
    assert.equal(
      invalidField({ action: 'Drive', payload: { linear: Number.POSITIVE_INFINITY, angular: 0 } }),
      'payload.linear',
    );
    assert.equal(invalidField({ action: 'Fly', payload: {} }), 'action');
    assert.equal(
      invalidField({ action: 'Drive', payload: { linear: 0, angular: 0, boost: true } }),
      'payload',
    );
    assert.equal(
      invalidField({ action: 'TriggerRelay', payload: { relayId: '../x', state: true } }),
      'payload.relayId',
    );
  });

  it('caps a trajectory at its maximum number of points, and refuses a zero speed', () => {
    const points = (count: number) => Array.from({ length: count }, (_, x) => ({ x, y: 0 }));
    parseRobotIntent({
      action: 'FollowTrajectory',
      payload: { points: points(MAX_TRAJECTORY_POINTS), maxSpeed: 1 },
    });
    assert.equal(
      invalidField({
        action: 'FollowTrajectory',
        payload: { points: points(MAX_TRAJECTORY_POINTS + 1), maxSpeed: 1 },
      }),
      'payload.points',
    );
    assert.equal(
      invalidField({ action: 'FollowTrajectory', payload: { points: points(1), maxSpeed: 0 } }),
      'payload.maxSpeed',
    );
  });
});
