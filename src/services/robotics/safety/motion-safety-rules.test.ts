import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MotionSafetySettings } from '../../../kernel/config/robotics-configuration.ts';
import type { AgentRecord } from '../../../platform/storage/ports/agent-store.ts';
import { OccupancyOctree } from '../perception/occupancy-octree.ts';
import { insidePolygon, type MotionWorldModel, motionSafetyRules } from './motion-safety-rules.ts';

const NOW = 1_700_000_000_000;

/** A wall of occupied voxels across x = `x`, from y = -1 to 1, 0.05–0.5 m high. */
function mapWithWall(x: number): OccupancyOctree {
  const map = new OccupancyOctree();
  for (let repeat = 0; repeat < 3; repeat += 1) {
    for (let y = -1; y <= 1; y += 0.025) {
      for (const z of [0.1, 0.3]) map.insertRay({ x: 0, y: 0, z }, { x, y, z }, true);
    }
  }
  return map;
}

function setting(overrides: Partial<MotionSafetySettings> = {}) {
  const state = {
    estop: { engaged: false, reason: 'none' },
    motion: { x: 0, y: 0, yaw: 0, linear: 0, angular: 0 } as
      | { x: number; y: number; yaw: number; linear: number; angular: number }
      | undefined,
    map: mapWithWall(2),
    overrideUntil: 0,
  };
  const world: MotionWorldModel = {
    estop: () => state.estop,
    motion: () => state.motion,
    map: () => state.map,
    manualOverrideUntil: () => state.overrideUntil,
  };
  const settings: MotionSafetySettings = {
    maxLinear: 0.8,
    maxAngular: 1.5,
    maxLinearAcceleration: 1,
    maxAngularAcceleration: 3,
    accelerationWindowSeconds: 0.5,
    workspace: { min: { x: -0.5, y: -0.5, z: 0 }, max: { x: 0.5, y: 0.5, z: 0.8 } },
    geofence: [
      { x: -5, y: -5 },
      { x: 5, y: -5 },
      { x: 5, y: 5 },
      { x: -5, y: 5 },
    ],
    collision: {
      horizonSeconds: 2,
      footprintRadius: 0.25,
      safetyMargin: 0.05,
      zMin: 0.02,
      zMax: 1.5,
    },
    manualOverrideMs: 5000,
    ...overrides,
  };
  const rules = motionSafetyRules(settings, world);
  const check = async (kind: string, params: Record<string, unknown>, resource = 'base') => {
    const intent = { kind, resource, params };
    for (const rule of rules) {
      if (!rule.appliesTo(intent)) continue;
      const verdict = await rule.check(intent, {
        agent: {} as AgentRecord,
        runId: undefined,
        now: NOW,
      });
      if (!verdict.ok) return { ruleId: rule.id, ...verdict };
    }
    return undefined;
  };
  return { state, check };
}

describe('motion safety rules', () => {
  it('refuses every motion while the e-stop is engaged, with KEEL_ESTOP_ENGAGED', async () => {
    const { state, check } = setting();
    state.estop = { engaged: true, reason: 'operator' };
    for (const [kind, params] of [
      ['hal.drive', { linear: 0, angular: 0 }],
      ['hal.arm', { x: 0.1, y: 0, z: 0.2 }],
      ['hal.relay', { state: true }],
    ] as const) {
      const refusal = await check(kind, params);
      assert.equal(refusal?.ruleId, 'robot-estop-latch');
      assert.equal(refusal?.code, 'KEEL_ESTOP_ENGAGED');
    }
    assert.equal(
      await check('hal.relay', { state: false }),
      undefined,
      'opening a relay is allowed',
    );
  });

  it('suspends AI motion during a manual override, until its window ends', async () => {
    const { state, check } = setting();
    state.overrideUntil = NOW + 1;
    assert.equal(
      (await check('hal.drive', { linear: 0.1, angular: 0 }))?.ruleId,
      'robot-manual-override',
    );
    state.overrideUntil = NOW;
    assert.equal(await check('hal.drive', { linear: 0.1, angular: 0 }), undefined);
  });

  it('caps speed and turn rate at the limit, and refuses just past it', async () => {
    const { state, check } = setting({ maxLinearAcceleration: 10 });
    state.map = new OccupancyOctree();
    assert.equal(await check('hal.drive', { linear: 0.8, angular: 0 }), undefined);
    assert.equal(
      (await check('hal.drive', { linear: 0.8001, angular: 0 }))?.ruleId,
      'robot-speed-cap',
    );
    assert.equal(
      (await check('hal.drive', { linear: -0.81, angular: 0 }))?.ruleId,
      'robot-speed-cap',
    );
    assert.equal(await check('hal.drive', { linear: 0, angular: -1.5 }), undefined);
    assert.equal(
      (await check('hal.drive', { linear: 0, angular: 1.5001 }))?.ruleId,
      'robot-speed-cap',
    );
    const trajectory = (maxSpeed: number) =>
      check('hal.drive', { points: [{ x: 1, y: 0 }], maxSpeed }, 'trajectory');
    assert.equal(await trajectory(0.8), undefined);
    assert.equal((await trajectory(0.801))?.ruleId, 'robot-speed-cap');
    assert.equal(
      (await check('hal.drive', { linear: 0.1 }))?.ruleId,
      'robot-speed-cap',
      'an unreadable drive is refused',
    );
  });

  it('caps the change of velocity at the acceleration cap over its window, but never refuses slowing', async () => {
    const { state, check } = setting();
    state.map = new OccupancyOctree();
    assert.equal(await check('hal.drive', { linear: 0.5, angular: 0 }), undefined);
    assert.equal(
      (await check('hal.drive', { linear: 0.5001, angular: 0 }))?.ruleId,
      'robot-acceleration-cap',
    );
    state.motion = { x: 0, y: 0, yaw: 0, linear: 0.8, angular: 0 };
    assert.equal(await check('hal.drive', { linear: 0, angular: 0 }), undefined);
    assert.equal(
      (await check('hal.drive', { linear: -0.8, angular: 0 }))?.ruleId,
      'robot-acceleration-cap',
    );
  });

  it('keeps the end effector inside the workspace box, edges included', async () => {
    const { check } = setting();
    assert.equal(await check('hal.arm', { x: 0.5, y: -0.5, z: 0.8 }, 'arm'), undefined);
    assert.equal(
      (await check('hal.arm', { x: 0.5001, y: 0, z: 0.4 }, 'arm'))?.ruleId,
      'robot-workspace-box',
    );
    assert.equal(
      (await check('hal.arm', { x: 0, y: 0, z: -0.001 }, 'arm'))?.ruleId,
      'robot-workspace-box',
    );
  });

  it('keeps the base inside the geofence, at and past its edge', async () => {
    const { state, check } = setting();
    state.map = new OccupancyOctree();
    state.motion = { x: 3.75, y: 0, yaw: 0, linear: 0.5, angular: 0 };
    // 0.5 m/s for the 2 s horizon ends with the 0.25 m footprint exactly touching x = 5.
    assert.equal(await check('hal.drive', { linear: 0.5, angular: 0 }), undefined);
    assert.equal(
      (await check('hal.drive', { linear: 0.51, angular: 0 }))?.ruleId,
      'robot-geofence',
    );
    assert.equal(
      await check('hal.drive', { points: [{ x: 4.75, y: 4.75 }], maxSpeed: 0.5 }, 'trajectory'),
      undefined,
    );
    assert.equal(
      (
        await check(
          'hal.drive',
          {
            points: [
              { x: 4.5, y: 0 },
              { x: 5.2, y: 0 },
            ],
            maxSpeed: 0.5,
          },
          'trajectory',
        )
      )?.ruleId,
      'robot-geofence',
    );
  });

  it('refuses a motion whose swept footprint meets the wall, and allows one that stops short', async () => {
    const { state, check } = setting({ maxLinearAcceleration: 10 });
    // The wall at x = 2 (voxels up to 0.05 m deep); footprint 0.25 + margin 0.05 = 0.3 m.
    state.motion = { x: 0, y: 0, yaw: 0, linear: 0, angular: 0 };
    assert.equal(
      await check('hal.drive', { linear: 0.8, angular: 0 }),
      undefined,
      '1.6 m in 2 s stops short',
    );
    state.motion = { x: 0.2, y: 0, yaw: 0, linear: 0, angular: 0 };
    const refusal = await check('hal.drive', { linear: 0.8, angular: 0 });
    assert.equal(refusal?.ruleId, 'robot-collision');
    assert.ok(Number(refusal?.details?.timeSeconds) < 2);
    assert.equal(
      await check('hal.drive', { linear: -0.8, angular: 0 }),
      undefined,
      'backing away is clear',
    );
    assert.equal(
      await check('hal.drive', { linear: 0, angular: 0 }),
      undefined,
      'stopping is always clear',
    );
  });

  it('checks every leg of a trajectory against the map', async () => {
    const { check } = setting();
    assert.equal(
      await check(
        'hal.drive',
        {
          points: [
            { x: 1, y: 0 },
            { x: 1, y: 1.5 },
            { x: 3, y: 1.5 },
          ],
          maxSpeed: 0.5,
        },
        'trajectory',
      ),
      undefined,
      'around the end of the wall',
    );
    const refusal = await check(
      'hal.drive',
      {
        points: [
          { x: 1, y: 0 },
          { x: 3, y: 0 },
        ],
        maxSpeed: 0.5,
      },
      'trajectory',
    );
    assert.equal(refusal?.ruleId, 'robot-collision');
    assert.equal(refusal?.details?.waypoint, 1);
  });

  it('refuses motion before the pose is known', async () => {
    const { state, check } = setting();
    state.motion = undefined;
    assert.equal((await check('hal.drive', { linear: 0.1, angular: 0 }))?.ruleId, 'robot-geofence');
    assert.equal(
      (await check('hal.drive', { points: [{ x: 1, y: 0 }], maxSpeed: 0.3 }, 'trajectory'))?.ruleId,
      'robot-geofence',
    );
  });

  it('reads a drive by its resource only: mixed or malformed parameters are refused, never reinterpreted', async () => {
    const { check } = setting({ maxLinearAcceleration: 10 });
    // A velocity dressed up with an empty trajectory, and a trajectory dressed up as a stop.
    assert.ok(await check('hal.drive', { linear: 0.5, angular: 0, points: [], maxSpeed: 0.1 }));
    assert.ok(
      await check(
        'hal.drive',
        { points: [{ x: '8', y: 0 }], maxSpeed: 0.8, linear: 0, angular: 0 },
        'trajectory',
      ),
    );
    assert.ok(await check('hal.drive', { maxSpeed: 0.5 }, 'trajectory'), 'no points');
    assert.ok(
      await check('hal.drive', { points: [{ x: Number.NaN, y: 0 }], maxSpeed: 0.5 }, 'trajectory'),
    );
    assert.ok(
      await check('hal.drive', { points: [{ x: 1, y: 0 }], maxSpeed: -0.5 }, 'trajectory'),
      'backwards',
    );
    assert.ok(await check('hal.drive', { points: [{ x: 1, y: 0 }], maxSpeed: 0 }, 'trajectory'));
    assert.ok(
      await check('hal.drive', { linear: 0.1, angular: 0 }, 'wheels'),
      'an unknown resource',
    );
    assert.ok(await check('hal.arm', { x: 0.1, y: 0, z: 0.2 }, 'gripper'), 'an unknown arm');
  });

  it('always lets a stop through, even with the pose unknown or the robot outside the fence', async () => {
    const { state, check } = setting();
    state.motion = undefined;
    assert.equal(await check('hal.drive', { linear: 0, angular: 0 }), undefined);
    state.motion = { x: 9, y: 9, yaw: 0, linear: 0, angular: 0 };
    assert.equal(await check('hal.drive', { linear: 0, angular: 0 }), undefined);
  });

  it('sweeps a leg longer than one query end to end', async () => {
    const { state, check } = setting({ geofence: undefined });
    state.map = new OccupancyOctree({});
    for (let repeat = 0; repeat < 3; repeat += 1) {
      for (let y = -1; y <= 1; y += 0.025)
        state.map.insertRay({ x: 69, y, z: 0.3 }, { x: 70, y, z: 0.3 }, true);
    }
    const leg = (to: number) =>
      check('hal.drive', { points: [{ x: to, y: 0 }], maxSpeed: 0.5 }, 'trajectory');
    assert.equal((await leg(75))?.ruleId, 'robot-collision');
    assert.equal(await leg(60), undefined);
  });

  it('does not let a long leg step over a notch in the fence narrower than the footprint', async () => {
    const notched = [
      { x: -10, y: -1 },
      { x: 4.4, y: -1 },
      { x: 4.5, y: 0.5 },
      { x: 4.6, y: -1 },
      { x: 20, y: -1 },
      { x: 20, y: 5 },
      { x: -10, y: 5 },
    ];
    const { state, check } = setting({ geofence: notched });
    state.map = new OccupancyOctree();
    assert.equal(
      (await check('hal.drive', { points: [{ x: 15, y: 0 }], maxSpeed: 0.5 }, 'trajectory'))
        ?.ruleId,
      'robot-geofence',
    );
    assert.equal(
      await check('hal.drive', { points: [{ x: 15, y: 3 }], maxSpeed: 0.5 }, 'trajectory'),
      undefined,
    );
  });

  it('tells inside from outside a polygon, edges inside', () => {
    const square = [
      { x: 0, y: 0 },
      { x: 2, y: 0 },
      { x: 2, y: 2 },
      { x: 0, y: 2 },
    ];
    assert.equal(insidePolygon({ x: 1, y: 1 }, square), true);
    assert.equal(insidePolygon({ x: 2, y: 1 }, square), true);
    assert.equal(insidePolygon({ x: 2.0001, y: 1 }, square), false);
  });
});
