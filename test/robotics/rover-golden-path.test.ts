import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { DEMO_YARD } from '../../src/services/robotics/demo-yard.ts';
import { roverManifest, waitForRun, withRoverNode } from './rover-fixture.ts';

const GOAL = { x: 10, y: 2 };

const DELIVERY = parseMockScript({
  turns: [
    { reply: { toolCalls: [{ name: 'navigate_to', arguments: GOAL }] } },
    {
      expect: { role: 'tool', contains: 'arrived' },
      reply: { toolCalls: [{ name: 'finish', arguments: { summary: 'At the loading bay.' } }] },
    },
  ],
});

describe('the rover', { timeout: 240_000 }, () => {
  it('reaches a goal behind a wall in the sim yard with a scripted LLM, with zero collisions', async () => {
    await withRoverNode(structuredClone(DEMO_YARD) as never, DELIVERY, async (node) => {
      const robot = node.robot;
      assert.ok(robot !== undefined, 'the node drives a robot');
      await node.runtime.deploy(
        roverManifest({ bounds: DEMO_YARD.bounds, dock: { x: 1, y: 1 } }),
        'test',
      );
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Deliver the parcel to the loading bay at (10, 2).' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitForRun(node, submitted.id);
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      const result = ended.result as {
        status: string;
        reached: Array<{ x: number; y: number }>;
        refusals: unknown[];
      };
      assert.equal(result.status, 'done', JSON.stringify(result));
      assert.deepEqual(result.reached, [GOAL]);

      // The truth, from the simulator: near the goal, behind the wall, and never touched anything.
      const state = robot.body.state();
      assert.ok(state !== undefined);
      assert.ok(
        Math.hypot(state.x - GOAL.x, state.y - GOAL.y) < 0.5,
        `ended at (${state.x}, ${state.y})`,
      );
      assert.equal(state.contacts, 0, 'zero collisions');

      // Every motion went through the gate and was audited.
      const audit = await node.storage.audit.read(0, 100_000);
      const trajectories = audit.filter(
        (entry) => entry.kind === 'syscall.allow' && entry.subject === 'hal.drive trajectory',
      );
      assert.ok(trajectories.length >= 1);
    });
  });

  it('returns to its dock by reflex when its battery runs low, before asking its LLM anything', async () => {
    const world = {
      ...structuredClone(DEMO_YARD),
      robot: { start: { x: 8, y: 2, yaw: Math.PI }, battery: { start: 0.15 } },
    };
    const script = parseMockScript({
      turns: [
        {
          expect: { role: 'user', contains: 'Inspect' },
          reply: {
            toolCalls: [{ name: 'finish', arguments: { summary: 'Docked and charging.' } }],
          },
        },
      ],
    });
    await withRoverNode(world as never, script, async (node, mock) => {
      await node.runtime.deploy(
        roverManifest({ bounds: DEMO_YARD.bounds, dock: { x: 1, y: 1 } }),
        'test',
      );
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Inspect the yard.' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitForRun(node, submitted.id);
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      const result = ended.result as { status: string; reached: Array<{ x: number; y: number }> };
      assert.deepEqual(result.reached, [{ x: 1, y: 1 }], 'the dock was the first and only goal');
      const state = node.robot?.body.state();
      assert.ok(
        state !== undefined && Math.hypot(state.x - 1, state.y - 1) < 0.5,
        `ended at (${state?.x}, ${state?.y})`,
      );
      assert.equal(state?.contacts, 0);
      assert.equal(mock.requests().length, 1, 'the LLM was asked once, after the robot was docked');
    });
  });
});
