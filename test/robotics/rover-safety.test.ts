import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { roverManifest, waitForRun, withRoverNode } from './rover-fixture.ts';

/** The robot on its dock facing a wall 0.6 m ahead. */
const CORNERED = {
  bounds: { minX: 0, minY: 0, maxX: 6, maxY: 4 },
  obstacles: [{ type: 'box', minX: 1.6, minY: 0, maxX: 2, maxY: 3 }],
  dock: { x: 1, y: 1, yaw: 0 },
};

const RECKLESS = parseMockScript({
  turns: [
    { reply: { toolCalls: [{ name: 'drive', arguments: { linear: 3, angular: 0 } }] } },
    {
      expect: { role: 'tool', contains: 'refused' },
      reply: { toolCalls: [{ name: 'drive', arguments: { linear: 0.5, angular: 0 } }] },
    },
    {
      expect: { role: 'tool', contains: 'refused' },
      reply: {
        toolCalls: [{ name: 'finish', arguments: { summary: 'The safety kernel said no.' } }],
      },
    },
  ],
});

describe('the motion safety kernel under a reckless LLM', { timeout: 120_000 }, () => {
  it('denies an unsafe speed and a drive into a wall, audits both, and the robot never moves', async () => {
    await withRoverNode(CORNERED, RECKLESS, async (node) => {
      await node.runtime.deploy(roverManifest({ bounds: CORNERED.bounds }), 'test');
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Go fast.' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitForRun(node, submitted.id);
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      const result = ended.result as {
        status: string;
        refusals: Array<{ action: string; code: string; message: string }>;
      };
      assert.equal(result.status, 'done');
      assert.deepEqual(
        result.refusals.map((refusal) => [refusal.action, refusal.code]),
        [
          ['Drive', 'KEEL_POLICY_VIOLATION'],
          ['Drive', 'KEEL_POLICY_VIOLATION'],
        ],
      );
      assert.match(result.refusals[0]?.message ?? '', /robot-speed-cap/);
      assert.match(result.refusals[1]?.message ?? '', /robot-collision/);

      const audit = await node.storage.audit.read(0, 100_000);
      const denials = audit.filter(
        (entry) => entry.kind === 'syscall.deny' && entry.subject === 'hal.drive base',
      );
      assert.equal(denials.length, 2, JSON.stringify(denials.map((entry) => entry.data)));
      const allowed = audit.filter(
        (entry) => entry.kind === 'syscall.allow' && entry.subject === 'hal.drive base',
      );
      assert.equal(allowed.length, 0, 'no drive command reached the body');

      const state = node.robot?.body.state();
      assert.equal(state?.contacts, 0);
      assert.ok(Math.abs((state?.x ?? 0) - 1) < 0.05, 'the robot stayed on its dock');
    });
  });

  it('refuses every motion while the e-stop is engaged, and releasing it is an audited operator action', async () => {
    const script = parseMockScript({
      turns: [
        { reply: { toolCalls: [{ name: 'drive', arguments: { linear: -0.2, angular: 0 } }] } },
        { reply: { toolCalls: [{ name: 'finish', arguments: { summary: 'stopped' } }] } },
      ],
    });
    await withRoverNode(CORNERED, script, async (node) => {
      const robot = node.robot;
      assert.ok(robot);
      await robot.engage('operator', 'operator:test');
      await node.runtime.deploy(
        roverManifest({ bounds: CORNERED.bounds, maxCycles: 8, observeWaitMs: 50 }),
        'test',
      );
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Back up.' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitForRun(node, submitted.id);
      // The rover holds while the e-stop is set: it never asks its LLM and stops at its cycle limit.
      assert.equal(
        (ended.result as { reason?: string }).reason,
        'cycle limit',
        JSON.stringify(ended.result),
      );
      await assert.rejects(
        node.kernel.gate.call(
          { agentId: (await node.runtime.show('rover')).agent.id },
          { kind: 'hal.drive', resource: 'base', params: { linear: 0, angular: 0 } },
        ),
        { code: 'KEEL_ESTOP_ENGAGED' },
      );
      assert.equal(await robot.release('operator:test', 'cleared the bay'), true);
      const audit = await node.storage.audit.read(0, 100_000);
      const kinds = audit.map((entry) => `${entry.kind}:${entry.outcome}`);
      assert.ok(kinds.includes('robot.estop:engaged'));
      assert.ok(kinds.includes('robot.estop.release:released'));
      assert.ok(
        audit.some((entry) => entry.kind === 'syscall.deny' && entry.code === 'KEEL_ESTOP_ENGAGED'),
      );
    });
  });

  it('asks a human through the approvals inbox, waits without moving, and goes on with the answer', async () => {
    const script = parseMockScript({
      turns: [
        { reply: { toolCalls: [{ name: 'ask_human', arguments: { question: 'Which door?' } }] } },
        {
          expect: { role: 'tool', contains: 'east door' },
          reply: {
            toolCalls: [{ name: 'finish', arguments: { summary: 'Taking the east door.' } }],
          },
        },
      ],
    });
    await withRoverNode(CORNERED, script, async (node) => {
      await node.runtime.deploy(roverManifest({ bounds: CORNERED.bounds }), 'test');
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Leave the room.' },
        { origin: 'test', actor: 'test' },
      );
      let pending: Awaited<ReturnType<typeof node.kernel.approvals.list>>[number] | undefined;
      for (let waited = 0; waited < 30_000 && pending === undefined; waited += 50) {
        pending = (await node.kernel.approvals.list({ state: 'pending' })).find(
          (approval) => approval.kind === 'hitl',
        );
        if (pending === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(pending, 'the question reached the approvals inbox');
      for (let waited = 0; waited < 10_000; waited += 50) {
        if ((await node.storage.runs.get(submitted.id))?.status === 'suspended') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const waiting = await node.storage.runs.get(submitted.id);
      assert.equal(waiting?.status, 'suspended', JSON.stringify(waiting?.error));
      assert.equal(node.robot?.body.state()?.mode, 0, 'the body is idle while the brain waits');
      await node.kernel.approvals.decide(pending.id, 'approved', 'operator:ana', undefined, {
        answer: 'the east door',
      });
      const ended = await waitForRun(node, submitted.id);
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      assert.equal((ended.result as { summary: string }).summary, 'Taking the east door.');
    });
  });

  it('answers a malformed tool call from its LLM with the reason, instead of failing the run', async () => {
    const script = parseMockScript({
      turns: [
        { reply: { toolCalls: [{ name: 'ask_human', arguments: { question: '' } }] } },
        {
          expect: { role: 'tool', contains: 'invalid: robot intent payload.question' },
          reply: { toolCalls: [{ name: 'finish', arguments: { summary: 'Never mind.' } }] },
        },
      ],
    });
    await withRoverNode(CORNERED, script, async (node) => {
      await node.runtime.deploy(roverManifest({ bounds: CORNERED.bounds }), 'test');
      const submitted = await node.runtime.submitRun(
        'rover',
        { prompt: 'Ask.' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitForRun(node, submitted.id);
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      assert.equal(
        (await node.kernel.approvals.list({ state: 'pending' })).length,
        0,
        'nobody was asked',
      );
    });
  });
});
