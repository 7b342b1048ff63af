import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { DEMO_YARD } from '../../src/services/robotics/demo-yard.ts';
import { FLEET_MESSAGES } from '../../src/services/robotics/robot-executors.ts';
import { roverManifest, withRoverNode } from './rover-fixture.ts';

const IDLE = parseMockScript({ turns: [{ reply: { text: 'idle' } }] });

describe('the fleet syscalls', { timeout: 60_000 }, () => {
  it('carries a peer message over the bus from the calling agent, and posts and claims tasks through the gate', async () => {
    await withRoverNode(structuredClone(DEMO_YARD) as never, IDLE, async (node) => {
      await node.runtime.deploy(roverManifest(), 'test');
      const agentId = (await node.runtime.show('rover')).agent.id;
      const listening = new AbortController();
      const messages = node.bus.subscribe(FLEET_MESSAGES, { signal: listening.signal });
      const received = (async () => {
        for await (const message of messages) return message;
        return undefined;
      })();
      await node.kernel.gate.call(
        { agentId },
        { kind: 'fleet.message', resource: 'rover-2', params: { message: 'meet at the dock' } },
      );
      const message = await received;
      listening.abort();
      assert.equal(message?.from, agentId, 'the sender is the caller, not a claim of the caller');
      assert.equal(message?.to, 'rover-2');
      assert.equal(message?.message, 'meet at the dock');

      const posted = (await node.kernel.gate.call(
        { agentId },
        {
          kind: 'fleet.tasks',
          resource: 'board',
          params: { title: 'Inspect bay 3', description: '' },
        },
      )) as { id: string };
      const claimed = (await node.kernel.gate.call(
        { agentId },
        { kind: 'fleet.tasks', resource: 'board', params: { claim: posted.id } },
      )) as { claimedBy: string };
      assert.equal(claimed.claimedBy, agentId);
      await assert.rejects(
        node.kernel.gate.call(
          { agentId },
          { kind: 'fleet.tasks', resource: 'board', params: { claim: posted.id } },
        ),
        { code: 'KEEL_CONFLICT' },
      );
      await assert.rejects(
        node.kernel.gate.call(
          { agentId },
          { kind: 'hal.arm', resource: 'arm', params: { x: 0.1, y: 0, z: 0.2 } },
        ),
        { code: 'KEEL_CAPABILITY_DENIED' },
        'deny by default: the rover holds no hal.arm grant',
      );
    });
  });
});
