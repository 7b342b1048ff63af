import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../test/support/assertions.ts';
import { createKernelHarness } from '../../test/support/kernel-harness.ts';
import { ManualClock } from '../platform/clock/clock.ts';
import { APPROVAL_DECIDED, APPROVAL_REQUESTED } from './kernel-topics.ts';

describe('kernel', () => {
  it('charges budget reservations a crash left open, in full, and audits it', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    // A reservation taken by a process that died before settling it.
    await storage.budgets.reserve({
      id: 'rsv_left_open',
      scopes: ['agent:a1', 'run:r1'],
      amounts: { tokens: 500, costMicros: 20, calls: 1, wallMs: 30_000 },
      now: Date.now(),
    });
    assert.equal(await kernel.budgets.reconcile('node:test'), 1);
    const state = await storage.budgets.get('agent:a1');
    assert.deepEqual(state?.spent, { tokens: 500, costMicros: 20, calls: 1, wallMs: 30_000 });
    assert.deepEqual(state?.reserved, { tokens: 0, costMicros: 0, calls: 0, wallMs: 0 });
    const [entry] = await kernel.audit.tail(1);
    assert.equal(entry?.kind, 'budget.reconcile');
    assert.equal(await kernel.budgets.reconcile('node:test'), 0, 'nothing left to charge');
  });

  it('finds an agent by name through its cache, and sees at once a change the kernel made', async () => {
    let reads = 0;
    await using harness = await createKernelHarness({
      cacheTtlMs: 60_000,
      replaceStores: (storage) => ({
        ...storage,
        agents: {
          ...storage.agents,
          get: (id) => {
            reads += 1;
            return storage.agents.get(id);
          },
          getByName: (name) => {
            reads += 1;
            return storage.agents.getByName(name);
          },
        },
      }),
    });
    const { kernel } = harness;
    const agent = await harness.runningAgent('scout');
    assert.equal((await kernel.agents.getByName('scout'))?.id, agent.id);
    const afterFirst = reads;
    assert.equal((await kernel.agents.getByName('scout'))?.state, 'running');
    assert.equal(reads, afterFirst, 'the second lookup reads nothing');
    await kernel.agents.setState(agent.id, 'stopped');
    assert.equal((await kernel.agents.getByName('scout'))?.state, 'stopped');
    assert.equal(await kernel.agents.getByName('nobody'), undefined);
  });

  it('expires pending approvals after their time, audits and publishes it', async () => {
    const clock = new ManualClock(Date.now());
    await using harness = await createKernelHarness({
      clock,
      approvalTtlMs: 60_000,
      approvalRules: [
        { kind: 'tool.call', resource: '*', trustLevels: ['standard'], reason: null },
      ],
    });
    const { kernel, bus } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'tool.call',
      doExecute: async () => ({ value: 1 }),
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    const requested = bus.subscribe(APPROVAL_REQUESTED);
    const decided = bus.subscribe(APPROVAL_DECIDED);
    const error = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'deploy' }),
      'KEEL_APPROVAL_REQUIRED',
    );
    const approvalId = String(error.details.approvalId);
    const first = await requested[Symbol.asyncIterator]().next();
    assert.equal(first.value?.approvalId, approvalId);

    assert.equal(await kernel.approvals.expireDue(), 0);
    clock.advance(60_000);
    assert.equal(await kernel.approvals.expireDue(), 1);
    assert.equal((await kernel.approvals.get(approvalId))?.state, 'expired');
    const expired = await decided[Symbol.asyncIterator]().next();
    assert.deepEqual(expired.value, {
      approvalId,
      agentId: agent.id,
      runId: null,
      state: 'expired',
    });
    await rejectsWithCode(
      kernel.approvals.decide(approvalId, 'approved', 'operator:late'),
      'KEEL_CONFLICT',
    );
    const kinds = (await kernel.audit.tail(5)).map((entry) => entry.kind);
    assert.ok(kinds.includes('approval.expire'));

    // An expired request denies: the same call is refused, and no new approval is opened.
    const again = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'deploy' }),
      'KEEL_APPROVAL_EXPIRED',
    );
    assert.equal(again.details.approvalId, approvalId);
    assert.equal((await kernel.approvals.list({ state: 'pending' })).length, 0);
    requested.close();
    decided.close();
  });

  it('expires approvals on its own, from the sweeper it starts', async () => {
    await using harness = await createKernelHarness({
      approvalTtlMs: 50,
      sweepIntervalMs: 20,
      approvalRules: [
        { kind: 'tool.call', resource: '*', trustLevels: ['standard'], reason: null },
      ],
    });
    const { kernel } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'tool.call',
      doExecute: async () => ({ value: 1 }),
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    const error = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'deploy' }),
      'KEEL_APPROVAL_REQUIRED',
    );
    const approvalId = String(error.details.approvalId);
    const deadline = Date.now() + 5_000;
    while ((await kernel.approvals.get(approvalId))?.state === 'pending' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal((await kernel.approvals.get(approvalId))?.state, 'expired');
  });

  it('audits grants, revocations, trust changes and budget operator actions', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const agent = await harness.runningAgent('audited');
    const grant = await kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:ana');
    await kernel.capabilities.revoke(grant.id, 'operator:ana');
    await kernel.agents.setTrustLevel(agent.id, 'trusted', 'operator:ana');
    await kernel.budgets.setLimits(`agent:${agent.id}`, { tokens: 10 }, 'operator:ana');
    await kernel.budgets.reset(`agent:${agent.id}`, 'operator:ana');
    const entries = await kernel.audit.tail(10);
    assert.deepEqual(
      entries.map((entry) => [entry.kind, entry.actor]),
      [
        ['agent.register', 'operator:test'],
        ['capability.grant', 'operator:ana'],
        ['capability.revoke', 'operator:ana'],
        ['agent.trust', 'operator:ana'],
        ['budget.limits', 'operator:ana'],
        ['budget.reset', 'operator:ana'],
      ],
    );
    assert.equal((await kernel.audit.verify()).intact, true);
  });

  it('replaces an agent’s grants at once: validated first, audited, seen by the next syscall', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'clock.now',
      doExecute: async () => ({ value: 1 }),
    });
    const agent = await harness.runningAgent('replaced');
    const old = await kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:ana');
    assert.equal(await kernel.gate.call({ agentId: agent.id }, { kind: 'clock.now' }), 1);

    await rejectsWithCode(
      kernel.capabilities.replace(
        agent.id,
        [{ kind: 'log' }, { kind: 'tool.call', limits: { bogus: 1 } }],
        'deploy',
      ),
      'KEEL_CAPABILITY_INVALID',
    );
    const active = async () =>
      (await kernel.capabilities.list(agent.id))
        .filter((grant) => grant.revokedAt === null)
        .map((grant) => grant.grant.kind)
        .sort();
    assert.deepEqual(await active(), ['clock.now'], 'an invalid grant anywhere writes nothing');

    const replaced = await kernel.capabilities.replace(
      agent.id,
      [{ kind: 'log' }, { kind: 'random' }],
      'deploy',
    );
    assert.deepEqual(
      replaced.revoked.map((grant) => grant.id),
      [old.id],
    );
    assert.deepEqual(await active(), ['log', 'random']);
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'clock.now' }),
      'KEEL_CAPABILITY_DENIED',
    );
    const audited = (await kernel.audit.tail(10)).filter(
      (entry) => entry.actor === 'deploy' && entry.kind.startsWith('capability.'),
    );
    assert.deepEqual(
      audited.map((entry) => [entry.kind, entry.data.grantId]),
      [
        ['capability.revoke', old.id],
        ['capability.grant', replaced.added[0]?.id],
        ['capability.grant', replaced.added[1]?.id],
      ],
    );
    assert.equal((await kernel.audit.verify()).intact, true);
  });

  it('refuses invalid grants and expiries in the past', async () => {
    await using harness = await createKernelHarness();
    const agent = await harness.runningAgent();
    await rejectsWithCode(
      harness.kernel.capabilities.grant(
        agent.id,
        { kind: 'tool.call', limits: { bogus: 1 } },
        'operator:ana',
      ),
      'KEEL_CAPABILITY_INVALID',
    );
    await rejectsWithCode(
      harness.kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:ana', {
        expiresAt: Date.now() - 1,
      }),
      'KEEL_CAPABILITY_INVALID',
    );
    await rejectsWithCode(
      harness.kernel.agents.register({ name: 'Bad Name', trustLevel: 'standard' }, 'operator:ana'),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});
