import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { createKernelHarness } from '../../../test/support/kernel-harness.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import {
  type ExecutionContext,
  idempotencyKeyFor,
  type SyscallExecutor,
  type SyscallIntent,
} from './syscall.ts';

interface Recorder {
  readonly executor: SyscallExecutor;
  readonly calls: Array<{ intent: SyscallIntent; context: ExecutionContext }>;
}

function recorder(
  kind: string,
  behaviour: (intent: SyscallIntent, context: ExecutionContext) => Promise<JsonValue> = async () =>
    'done',
  extra: Partial<SyscallExecutor> = {},
): Recorder {
  const calls: Recorder['calls'] = [];
  return {
    calls,
    executor: {
      specificationVersion: 'v1',
      kind,
      ...extra,
      doExecute: async (intent, context) => {
        calls.push({ intent, context });
        return { value: await behaviour(intent, context) };
      },
    },
  };
}

const shellGrant = {
  kind: 'tool.call',
  resource: 'shell',
  limits: { commands: ['npm test', 'git *'] },
};

describe('gate', () => {
  it('denies by default, and audits the denial', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const shell = recorder('tool.call');
    kernel.registerExecutor(shell.executor);
    const agent = await harness.runningAgent();
    const error = await rejectsWithCode(
      kernel.gate.call(
        { agentId: agent.id },
        { kind: 'tool.call', resource: 'shell', params: { command: 'npm test' } },
      ),
      'KEEL_CAPABILITY_DENIED',
    );
    assert.match(error.message, /no capability grant for tool\.call shell/);
    assert.equal(shell.calls.length, 0);
    const [entry] = await kernel.audit.tail(1);
    assert.equal(entry?.kind, 'syscall.deny');
    assert.equal(entry?.code, 'KEEL_CAPABILITY_DENIED');
    assert.equal(entry?.agentId, agent.id);
    assert.deepEqual(entry?.data.params, { command: 'npm test' });
    assert.equal(entry?.data.step, 'capability');
  });

  it('runs a granted call and audits it with the grant that allowed it', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const shell = recorder('tool.call', async (intent) => `ran ${String(intent.params.command)}`);
    kernel.registerExecutor(shell.executor);
    const agent = await harness.runningAgent();
    const grant = await kernel.capabilities.grant(agent.id, shellGrant, 'operator:ana');
    const value = await kernel.gate.call(
      { agentId: agent.id },
      { kind: 'tool.call', resource: 'shell', params: { command: 'git status' } },
    );
    assert.equal(value, 'ran git status');
    assert.equal(shell.calls.length, 1);
    assert.equal(shell.calls[0]?.context.agentId, agent.id);
    const [entry] = await kernel.audit.tail(1);
    assert.equal(entry?.kind, 'syscall.allow');
    assert.equal(entry?.outcome, 'ok');
    assert.equal(entry?.data.grantId, grant.id);
    assert.equal(entry?.subject, 'tool.call shell');
  });

  it('audits the executor’s own summary of its parameters, bounded, or the parameters if it throws', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const summarised = recorder('tool.call', async () => 'done', {
      summarise: (intent) =>
        intent.params.broken === true
          ? (() => {
              throw new Error('cannot summarise');
            })()
          : { count: Object.keys(intent.params).length, note: 'x'.repeat(1000) },
    });
    kernel.registerExecutor(summarised.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    await kernel.gate.call(
      { agentId: agent.id },
      { kind: 'tool.call', resource: 'x', params: { a: 1, b: 2 } },
    );
    const [entry] = await kernel.audit.tail(1);
    assert.deepEqual(entry?.data.params, { count: 2, note: `${'x'.repeat(256)}…(+744 chars)` });
    await kernel.gate.call(
      { agentId: agent.id },
      { kind: 'tool.call', resource: 'x', params: { broken: true } },
    );
    const [fallback] = await kernel.audit.tail(1);
    assert.deepEqual(fallback?.data.params, { broken: true });
  });

  it('records no secret the node knows in the audit entry’s parameters, allowed or denied', async () => {
    const secret = 'sk-live-abcdefghijklmnop';
    await using harness = await createKernelHarness({ secrets: [secret] });
    const { kernel } = harness;
    kernel.registerExecutor(recorder('tool.call').executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call', resource: 'x' }, 'operator:ana');
    await kernel.gate.call(
      { agentId: agent.id },
      { kind: 'tool.call', resource: 'x', params: { note: `key ${secret}` } },
    );
    await rejectsWithCode(
      kernel.gate.call(
        { agentId: agent.id },
        { kind: 'tool.call', resource: 'y', params: { note: `key ${secret}` } },
      ),
      'KEEL_CAPABILITY_DENIED',
    );
    const entries = await kernel.audit.tail(2);
    assert.deepEqual(
      entries.map((entry) => [entry.kind, entry.data.params]),
      [
        ['syscall.allow', { note: 'key [REDACTED]' }],
        ['syscall.deny', { note: 'key [REDACTED]' }],
      ],
    );
  });

  it('denies a command outside the granted patterns', async () => {
    await using harness = await createKernelHarness();
    const shell = recorder('tool.call');
    harness.kernel.registerExecutor(shell.executor);
    const agent = await harness.runningAgent();
    await harness.kernel.capabilities.grant(agent.id, shellGrant, 'operator:ana');
    for (const command of ['rm -rf /', 'git status; rm -rf /', 'npm test -- --coverage']) {
      await rejectsWithCode(
        harness.kernel.gate.call(
          { agentId: agent.id },
          { kind: 'tool.call', resource: 'shell', params: { command } },
        ),
        'KEEL_CAPABILITY_DENIED',
      );
    }
    assert.equal(shell.calls.length, 0);
  });

  it('identifies the caller: unknown agents, agents not running and foreign runs are refused', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    kernel.registerExecutor(recorder('clock.now').executor);
    await rejectsWithCode(
      kernel.gate.call({ agentId: 'agt_nobody' }, { kind: 'clock.now' }),
      'KEEL_IDENTITY_UNKNOWN',
    );
    const idle = await kernel.agents.register(
      { name: 'idle', trustLevel: 'standard' },
      'operator:ana',
    );
    await kernel.capabilities.grant(idle.id, { kind: 'clock.now' }, 'operator:ana');
    const notRunning = await rejectsWithCode(
      kernel.gate.call({ agentId: idle.id }, { kind: 'clock.now' }),
      'KEEL_IDENTITY_UNKNOWN',
    );
    assert.match(notRunning.message, /is created, not running/);
    const owner = await harness.runningAgent('owner');
    const intruder = await harness.runningAgent('intruder');
    await kernel.capabilities.grant(intruder.id, { kind: 'clock.now' }, 'operator:ana');
    const run = await harness.newRun(owner.id);
    await rejectsWithCode(
      kernel.gate.call({ agentId: intruder.id, runId: run.id, seq: 1 }, { kind: 'clock.now' }),
      'KEEL_IDENTITY_UNKNOWN',
    );
    const [entry] = await kernel.audit.tail(1);
    assert.equal(entry?.data.step, 'identify');
  });

  it('refuses malformed and oversize intents with typed errors', async () => {
    await using harness = await createKernelHarness();
    const agent = await harness.runningAgent();
    const call = (intent: unknown) => harness.kernel.gate.call({ agentId: agent.id }, intent);
    await rejectsWithCode(call({ kind: 'Tool Call' }), 'KEEL_INVALID_ARGUMENT');
    await rejectsWithCode(call({ kind: 'clock.now', extra: 1 }), 'KEEL_INVALID_ARGUMENT');
    await rejectsWithCode(call('clock.now'), 'KEEL_INVALID_ARGUMENT');
    await rejectsWithCode(call({ kind: 'log', params: { value: 10n } }), 'KEEL_INVALID_ARGUMENT');
    await rejectsWithCode(
      call({ kind: 'log', params: { blob: 'x'.repeat(70 * 1024) } }),
      'KEEL_PAYLOAD_TOO_LARGE',
    );
    await rejectsWithCode(
      call({ kind: 'tool.call', resource: 'x\ud800y' }),
      'KEEL_INVALID_ARGUMENT',
    );
    await rejectsWithCode(call({ kind: 'log', params: { 'k\udc00': 1 } }), 'KEEL_INVALID_ARGUMENT');
    assert.equal(
      (await harness.kernel.audit.verify()).intact,
      true,
      'refusals of odd text keep the chain sound',
    );
    const [entry] = await harness.kernel.audit.tail(1);
    assert.equal(entry?.data.step, 'validate');
  });

  it('runs verifier rules after capabilities, in order, failing closed', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const drive = recorder('hal.drive');
    kernel.registerExecutor(drive.executor);
    kernel.verifier.register({
      id: 'speed-cap',
      description: 'test cap',
      appliesTo: (intent) => intent.kind === 'hal.drive',
      check: (intent) =>
        Number(intent.params.linear) > 0.3 ? { ok: false, reason: 'too fast' } : { ok: true },
    });
    kernel.verifier.register({
      id: 'broken',
      description: 'throws',
      appliesTo: (intent) => intent.params.trigger === true,
      check: () => {
        throw new Error('sensor offline');
      },
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(
      agent.id,
      { kind: 'hal.drive', limits: { maxLinear: 0.5 } },
      'operator:ana',
    );
    const tooFast = await rejectsWithCode(
      kernel.gate.call(
        { agentId: agent.id },
        { kind: 'hal.drive', resource: 'base', params: { linear: 0.4 } },
      ),
      'KEEL_POLICY_VIOLATION',
    );
    assert.match(tooFast.message, /refused by speed-cap: too fast/);
    const broken = await rejectsWithCode(
      kernel.gate.call(
        { agentId: agent.id },
        { kind: 'hal.drive', resource: 'base', params: { linear: 0.1, trigger: true } },
      ),
      'KEEL_POLICY_VIOLATION',
    );
    assert.match(broken.message, /sensor offline/);
    assert.equal(
      await kernel.gate.call(
        { agentId: agent.id },
        { kind: 'hal.drive', resource: 'base', params: { linear: 0.2 } },
      ),
      'done',
    );
    assert.equal(drive.calls.length, 1);
  });

  it('refuses absolute and escaping paths through the path policy even when granted', async () => {
    await using harness = await createKernelHarness();
    const write = recorder('fs.write');
    harness.kernel.registerExecutor(write.executor);
    const agent = await harness.runningAgent();
    await harness.kernel.capabilities.grant(
      agent.id,
      { kind: 'fs.write', limits: { paths: ['/srv/**', '**'] } },
      'operator:ana',
    );
    const absolute = await rejectsWithCode(
      harness.kernel.gate.call(
        { agentId: agent.id },
        { kind: 'fs.write', resource: 'file', params: { path: '/srv/x' } },
      ),
      'KEEL_POLICY_VIOLATION',
    );
    assert.match(absolute.message, /path-policy/);
    await rejectsWithCode(
      harness.kernel.gate.call(
        { agentId: agent.id },
        { kind: 'fs.write', resource: 'file', params: { path: 'a/../../etc' } },
      ),
      'KEEL_CAPABILITY_DENIED',
    );
    assert.equal(write.calls.length, 0);
  });

  it('says when no executor serves a granted kind', async () => {
    await using harness = await createKernelHarness();
    const agent = await harness.runningAgent();
    await harness.kernel.capabilities.grant(agent.id, { kind: 'memory.*' }, 'operator:ana');
    await rejectsWithCode(
      harness.kernel.gate.call({ agentId: agent.id }, { kind: 'memory.write', resource: 'notes' }),
      'KEEL_SYSCALL_UNSUPPORTED',
    );
  });

  it('applies revocations, new grants and state changes to the very next call, despite caches', async () => {
    // Caches that would serve an entry for a minute: only the kernel's own invalidation
    // can make these changes visible at once.
    await using harness = await createKernelHarness({ cacheTtlMs: 60_000 });
    const { kernel } = harness;
    kernel.registerExecutor(recorder('clock.now').executor);
    kernel.registerExecutor(recorder('random').executor);
    const agent = await harness.runningAgent();
    const grant = await kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:ana');
    await kernel.gate.call({ agentId: agent.id }, { kind: 'clock.now' });
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'random' }),
      'KEEL_CAPABILITY_DENIED',
    );
    await kernel.capabilities.grant(agent.id, { kind: 'random' }, 'operator:ana');
    assert.equal(await kernel.gate.call({ agentId: agent.id }, { kind: 'random' }), 'done');
    await kernel.capabilities.revoke(grant.id, 'operator:ana');
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'clock.now' }),
      'KEEL_CAPABILITY_DENIED',
    );
    await kernel.agents.setState(agent.id, 'paused');
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'random' }),
      'KEEL_IDENTITY_UNKNOWN',
    );
  });

  it('reserves and settles budgets, and trips the breaker once when spent', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const llm = recorder('llm.chat', async () => 'hi', {
      estimate: () => ({ calls: 1, tokens: 100 }),
    });
    kernel.registerExecutor({
      ...llm.executor,
      doExecute: async (intent, context) => ({
        ...(await llm.executor.doExecute(intent, context)),
        usage: { calls: 1, tokens: 40 },
      }),
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'llm.chat' }, 'operator:ana');
    await kernel.budgets.setLimits(`agent:${agent.id}`, { calls: 2 }, 'operator:ana');
    const call = () =>
      kernel.gate.call({ agentId: agent.id }, { kind: 'llm.chat', resource: 'default' });
    await call();
    await call();
    // The second call spent the last of the limit, which tripped the breaker as it settled.
    const exhausted = await rejectsWithCode(call(), 'KEEL_BUDGET_EXHAUSTED');
    assert.equal(exhausted.details.dimension, null);
    assert.match(exhausted.message, /is tripped/);
    await rejectsWithCode(call(), 'KEEL_BUDGET_EXHAUSTED');
    const state = await kernel.budgets.get(`agent:${agent.id}`);
    assert.equal(state?.spent.calls, 2);
    assert.equal(state?.spent.tokens, 80, 'settled with the reported usage, not the estimate');
    assert.equal(state?.reserved.calls, 0);
    const trips = (await kernel.audit.tail(20)).filter((entry) => entry.kind === 'budget.trip');
    assert.equal(trips.length, 1);
    await kernel.budgets.reset(`agent:${agent.id}`, 'operator:ana');
    assert.equal(await call(), 'hi');
  });

  it('reserves wall time as the timeout and settles it with the time taken', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const slow = recorder('tool.slow', async () => 'done', { estimate: () => ({ calls: 1 }) });
    kernel.registerExecutor({ ...slow.executor, timeoutMs: 5_000 });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.slow' }, 'operator:ana');
    const scope = `agent:${agent.id}` as const;
    await kernel.budgets.setLimits(scope, { wallMs: 4_000 }, 'operator:ana');
    const refused = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.slow' }),
      'KEEL_BUDGET_EXHAUSTED',
    );
    assert.equal(refused.details.dimension, 'wallMs');
    await kernel.budgets.setLimits(scope, { wallMs: 60_000 }, 'operator:ana');
    await kernel.gate.call({ agentId: agent.id }, { kind: 'tool.slow' });
    // The call took its share of a lease; handed back, nothing stays reserved.
    await kernel.budgets.handBackLeases();
    const state = await kernel.budgets.get(scope);
    assert.equal(state?.reserved.wallMs, 0);
    assert.ok((state?.spent.wallMs ?? 0) < 5_000, 'settled with the time taken, not the timeout');
  });

  it('fails closed when the budget cannot be checked', async () => {
    await using harness = await createKernelHarness({
      replaceStores: (storage) => ({
        ...storage,
        budgets: {
          ...storage.budgets,
          reserve: () => Promise.reject(new Error('disk on fire')),
        },
      }),
    });
    const llm = recorder('llm.chat', async () => 'hi', { estimate: () => ({ calls: 1 }) });
    harness.kernel.registerExecutor(llm.executor);
    const agent = await harness.runningAgent();
    await harness.kernel.capabilities.grant(agent.id, { kind: 'llm.chat' }, 'operator:ana');
    await rejectsWithCode(
      harness.kernel.gate.call({ agentId: agent.id }, { kind: 'llm.chat' }),
      'KEEL_BUDGET_EXHAUSTED',
    );
    assert.equal(llm.calls.length, 0);
  });

  it('charges a run budget and an agent budget together', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    kernel.registerExecutor(
      recorder('tool.call', async () => 'ok', { estimate: () => ({ calls: 1 }) }).executor,
    );
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    await kernel.budgets.setLimits(`run:${run.id}`, { calls: 1 }, 'operator:ana');
    await kernel.gate.call(
      { agentId: agent.id, runId: run.id, seq: 1 },
      { kind: 'tool.call', resource: 'x' },
    );
    await rejectsWithCode(
      kernel.gate.call(
        { agentId: agent.id, runId: run.id, seq: 2 },
        { kind: 'tool.call', resource: 'x' },
      ),
      'KEEL_BUDGET_EXHAUSTED',
    );
    assert.equal((await kernel.budgets.get(`agent:${agent.id}`))?.spent.calls, 1);
  });

  it('judges an approved call by the rules again when it runs, since the world may have changed', async () => {
    await using harness = await createKernelHarness({
      approvalRules: [
        { kind: 'hal.drive', resource: '*', trustLevels: ['standard'], reason: null },
      ],
    });
    const { kernel } = harness;
    const drive = recorder('hal.drive');
    kernel.registerExecutor(drive.executor);
    const world = { blocked: false };
    kernel.verifier.register({
      id: 'path-clear',
      description: 'test: the path is clear',
      appliesTo: (intent) => intent.kind === 'hal.drive',
      check: () =>
        world.blocked ? { ok: false, reason: 'something moved into the path' } : { ok: true },
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'hal.drive' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const identity = { agentId: agent.id, runId: run.id, seq: 1 };
    const intent = { kind: 'hal.drive', resource: 'base', params: { linear: 0.2, angular: 0 } };
    const asked = await rejectsWithCode(
      kernel.gate.call(identity, intent),
      'KEEL_APPROVAL_REQUIRED',
    );
    await kernel.approvals.decide(String(asked.details.approvalId), 'approved', 'operator:ana');
    world.blocked = true;
    const refused = await rejectsWithCode(
      kernel.gate.call(identity, intent),
      'KEEL_POLICY_VIOLATION',
    );
    assert.match(refused.message, /path-clear: something moved/);
    assert.equal(drive.calls.length, 0, 'the approved call did not run');
  });

  it('asks a human once, runs an approved call exactly once, and refuses a denied one', async () => {
    await using harness = await createKernelHarness({
      approvalRules: [
        { kind: 'tool.call', resource: 'shell', trustLevels: ['standard'], reason: null },
      ],
    });
    const { kernel } = harness;
    const shell = recorder('tool.call', async () => 'ran', { estimate: () => ({ calls: 1 }) });
    kernel.registerExecutor(shell.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, shellGrant, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const intent = { kind: 'tool.call', resource: 'shell', params: { command: 'npm test' } };
    const identity = { agentId: agent.id, runId: run.id, seq: 1 };

    const first = await rejectsWithCode(
      kernel.gate.call(identity, intent),
      'KEEL_APPROVAL_REQUIRED',
    );
    const approvalId = String(first.details.approvalId);
    const second = await rejectsWithCode(
      kernel.gate.call(identity, intent),
      'KEEL_APPROVAL_REQUIRED',
    );
    assert.equal(second.details.approvalId, approvalId, 'asking again finds the same approval');
    assert.equal((await kernel.approvals.list({ state: 'pending' })).length, 1);
    await kernel.budgets.handBackLeases();
    assert.equal(
      (await kernel.budgets.get(`agent:${agent.id}`))?.reserved.calls,
      0,
      'reservation released while waiting',
    );

    await kernel.approvals.decide(approvalId, 'approved', 'operator:ana', 'fine');
    assert.equal(await kernel.gate.call(identity, intent), 'ran');
    assert.equal(
      await kernel.gate.call(identity, intent),
      'ran',
      'the replay returns the journaled result',
    );
    assert.equal(shell.calls.length, 1);

    const next = { ...identity, seq: 2 };
    const third = await rejectsWithCode(kernel.gate.call(next, intent), 'KEEL_APPROVAL_REQUIRED');
    await kernel.approvals.decide(
      String(third.details.approvalId),
      'denied',
      'operator:bo',
      'not now',
    );
    await rejectsWithCode(kernel.gate.call(next, intent), 'KEEL_APPROVAL_DENIED');
    assert.equal(shell.calls.length, 1);
    const kinds = (await kernel.audit.tail(50)).map((entry) => entry.kind);
    for (const kind of ['approval.request', 'approval.approve', 'approval.use', 'approval.deny']) {
      assert.ok(kinds.includes(kind), `${kind} audited`);
    }
  });

  it('binds an approval to what the executor names, and only to an earlier call of the run', async () => {
    await using harness = await createKernelHarness({
      approvalRules: [
        { kind: 'tool.call', resource: '*', trustLevels: ['standard'], reason: null },
      ],
    });
    const { kernel } = harness;
    // `standsFor` in the params names the call this one stands in for; the digest ignores it.
    const shell = recorder('tool.call', async () => 'ran', {
      approvalSubject: (intent) => ({
        digest: String(intent.params.command),
        ...(typeof intent.params.standsFor === 'number' ? { seq: intent.params.standsFor } : {}),
      }),
    });
    kernel.registerExecutor(shell.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call', resource: '*' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const call = (seq: number | undefined, params: JsonValue, resource = 'shell') =>
      kernel.gate.call(
        { agentId: agent.id, ...(seq === undefined ? {} : { runId: run.id, seq }) },
        { kind: 'tool.call', resource, params },
      );
    // Three forms of call 1 ask together: one approval.
    const asked = await Promise.all(
      [
        call(1, { command: 'npm test' }),
        call(2, { command: 'npm test', standsFor: 1 }),
        call(3, { command: 'npm test', standsFor: 1 }),
      ].map((pending) => rejectsWithCode(pending, 'KEEL_APPROVAL_REQUIRED')),
    );
    const approvalId = String(asked[0]?.details.approvalId);
    assert.deepEqual(
      asked.map((error) => error.details.approvalId),
      [approvalId, approvalId, approvalId],
    );
    assert.equal((await kernel.approvals.list({ state: 'pending' })).length, 1);
    // A later seq, none, or outside a run: refused.
    for (const standsFor of [3, 0]) {
      await rejectsWithCode(call(2, { command: 'npm test', standsFor }), 'KEEL_INVALID_ARGUMENT');
    }
    await rejectsWithCode(
      call(undefined, { command: 'npm test', standsFor: 1 }),
      'KEEL_INVALID_ARGUMENT',
    );
    // The same subject on another resource is another call.
    const elsewhere = await rejectsWithCode(
      call(2, { command: 'npm test', standsFor: 1 }, 'deploy'),
      'KEEL_APPROVAL_REQUIRED',
    );
    assert.notEqual(elsewhere.details.approvalId, approvalId);
    await kernel.approvals.decide(approvalId, 'approved', 'operator:ana');
    assert.equal(await call(4, { command: 'npm test', standsFor: 1 }), 'ran');
    assert.equal(shell.calls.length, 1);
    await rejectsWithCode(call(1, { command: 'npm test' }), 'KEEL_APPROVAL_REQUIRED');
    assert.equal(shell.calls.length, 1, 'an approval is used once, by either form');
    // Call 4 ran: nothing may stand in for it.
    await rejectsWithCode(call(5, { command: 'npm test', standsFor: 4 }), 'KEEL_INVALID_ARGUMENT');
    // A denial holds for every form of the call.
    const next = await rejectsWithCode(call(6, { command: 'rm -r' }), 'KEEL_APPROVAL_REQUIRED');
    await kernel.approvals.decide(String(next.details.approvalId), 'denied', 'operator:ana');
    await rejectsWithCode(call(7, { command: 'rm -r', standsFor: 6 }), 'KEEL_APPROVAL_DENIED');
    assert.equal(shell.calls.length, 1);
  });

  it('runs an edited call when the approver edits it, checking the edit against the grant', async () => {
    await using harness = await createKernelHarness({
      approvalRules: [
        { kind: 'tool.call', resource: 'shell', trustLevels: ['standard'], reason: null },
      ],
    });
    const { kernel } = harness;
    const shell = recorder('tool.call', async (call) => `ran ${String(call.params.command)}`);
    kernel.registerExecutor(shell.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, shellGrant, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const intent = {
      kind: 'tool.call',
      resource: 'shell',
      params: { command: 'git push', cwd: 'app' },
    };
    const identity = { agentId: agent.id, runId: run.id, seq: 1 };
    const asked = await rejectsWithCode(
      kernel.gate.call(identity, intent),
      'KEEL_APPROVAL_REQUIRED',
    );
    const decided = await kernel.approvals.decide(
      String(asked.details.approvalId),
      'approved',
      'operator:ana',
      'status, not push',
      { command: 'git status' },
    );
    assert.deepEqual(decided.paramEdits, { command: 'git status' });
    assert.equal(await kernel.gate.call(identity, intent), 'ran git status');
    assert.deepEqual(shell.calls[0]?.intent.params, { command: 'git status', cwd: 'app' });
    assert.equal(
      await kernel.gate.call(identity, intent),
      'ran git status',
      "the agent replays its own intent and gets the edited call's result",
    );
    assert.equal(shell.calls.length, 1);
    const allowed = (await kernel.audit.tail(20)).find((entry) => entry.kind === 'syscall.allow');
    assert.equal(allowed?.data.editedByApprover, true);
    assert.deepEqual(allowed?.data.params, { command: 'git status', cwd: 'app' });
    assert.deepEqual(allowed?.data.agentParams, { command: 'git push', cwd: 'app' });
    const approve = (await kernel.audit.tail(20)).find(
      (entry) => entry.kind === 'approval.approve',
    );
    assert.deepEqual(approve?.data.paramEdits, { command: 'git status' });

    // An edit the grant does not allow is refused like any call, and nothing runs.
    const next = { ...identity, seq: 2 };
    const second = await rejectsWithCode(kernel.gate.call(next, intent), 'KEEL_APPROVAL_REQUIRED');
    await kernel.approvals.decide(
      String(second.details.approvalId),
      'approved',
      'operator:bo',
      undefined,
      {
        command: 'rm -rf /',
      },
    );
    await rejectsWithCode(kernel.gate.call(next, intent), 'KEEL_CAPABILITY_DENIED');
    assert.equal(shell.calls.length, 1);
    await kernel.budgets.handBackLeases();
    assert.equal(
      (await kernel.budgets.get(`agent:${agent.id}`))?.reserved.calls ?? 0,
      0,
      'no reservation is left behind',
    );

    // Only an approval edits.
    const third = await rejectsWithCode(
      kernel.gate.call({ ...identity, seq: 3 }, intent),
      'KEEL_APPROVAL_REQUIRED',
    );
    await rejectsWithCode(
      kernel.approvals.decide(
        String(third.details.approvalId),
        'denied',
        'operator:bo',
        undefined,
        {
          command: 'git status',
        },
      ),
      'KEEL_INVALID_ARGUMENT',
    );
  });

  it('does not ask trusted agents when the rule names other trust levels', async () => {
    await using harness = await createKernelHarness({
      approvalRules: [
        {
          kind: 'tool.call',
          resource: 'shell',
          trustLevels: ['untrusted', 'standard'],
          reason: null,
        },
      ],
    });
    harness.kernel.registerExecutor(recorder('tool.call').executor);
    const agent = await harness.runningAgent('trusted-one', 'trusted');
    await harness.kernel.capabilities.grant(agent.id, shellGrant, 'operator:ana');
    assert.equal(
      await harness.kernel.gate.call(
        { agentId: agent.id },
        { kind: 'tool.call', resource: 'shell', params: { command: 'npm test' } },
      ),
      'done',
    );
  });

  it('records results of a durable run once and replays them, errors included', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    let counter = 0;
    const counting = recorder('random', async (intent) => {
      counter += 1;
      if (intent.params.fail === true) throw new Error('upstream broke');
      return counter;
    });
    kernel.registerExecutor(counting.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'random' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const at = (seq: number) => ({ agentId: agent.id, runId: run.id, seq });
    assert.equal(await kernel.gate.call(at(1), { kind: 'random' }), 1);
    assert.equal(await kernel.gate.call(at(2), { kind: 'random' }), 2);
    assert.equal(await kernel.gate.call(at(1), { kind: 'random' }), 1);
    await rejectsWithCode(
      kernel.gate.call(at(3), { kind: 'random', params: { fail: true } }),
      'KEEL_EXECUTOR_FAILED',
    );
    await rejectsWithCode(
      kernel.gate.call(at(3), { kind: 'random', params: { fail: true } }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.equal(counter, 3, 'replays never run the executor again');
    await rejectsWithCode(
      kernel.gate.call(at(2), { kind: 'random', params: { other: true } }),
      'KEEL_REPLAY_MISMATCH',
    );
    assert.equal(counting.calls[0]?.context.idempotencyKey, idempotencyKeyFor(run.id, 1));
    assert.equal((await storage.runs.listJournal(run.id)).length, 3);
  });

  it('keeps a result too large for the journal as the call’s error, and an error too large cut, and replays them', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    const big = recorder('tool.call', async (intent) => {
      if (intent.resource === 'loud') throw new Error('y'.repeat(1024 * 1024));
      return 'x'.repeat(1024 * 1024);
    });
    kernel.registerExecutor(big.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    // Outside a run nothing is journaled: the result goes to the caller.
    assert.equal(
      String(await kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'dump' }))
        .length,
      1024 * 1024,
    );
    const run = await harness.newRun(agent.id);
    const at = { agentId: agent.id, runId: run.id, seq: 1 };
    const refused = await rejectsWithCode(
      kernel.gate.call(at, { kind: 'tool.call', resource: 'dump' }),
      'KEEL_PAYLOAD_TOO_LARGE',
    );
    assert.equal(refused.details.limit, 1024 * 1024);
    await rejectsWithCode(
      kernel.gate.call(at, { kind: 'tool.call', resource: 'dump' }),
      'KEEL_PAYLOAD_TOO_LARGE',
    );
    assert.equal(big.calls.length, 2, 'the replay does not run the call again');
    const [entry] = await storage.runs.listJournal(run.id);
    assert.deepEqual(
      [entry?.outcome, (entry?.result as { code?: string } | undefined)?.code],
      ['error', 'KEEL_PAYLOAD_TOO_LARGE'],
    );
    const [audited] = await kernel.audit.tail(1);
    assert.deepEqual([audited?.outcome, audited?.code], ['error', 'KEEL_PAYLOAD_TOO_LARGE']);

    // An error too large to keep is cut, for the agent and for the replay alike.
    const loud = { agentId: agent.id, runId: run.id, seq: 2 };
    const first = await rejectsWithCode(
      kernel.gate.call(loud, { kind: 'tool.call', resource: 'loud' }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.ok(first.message.length < 5_000, String(first.message.length));
    assert.match(first.message, /cut: the error was larger than/);
    const replayed = await rejectsWithCode(
      kernel.gate.call(loud, { kind: 'tool.call', resource: 'loud' }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.equal(replayed.message, first.message);
    assert.equal(big.calls.length, 3, 'the failed call ran once');
  });

  it('answers a run on its last replay only from its journal, and refuses a new call', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    const counting = recorder('random', async () => 7);
    kernel.registerExecutor(counting.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'random' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const at = (seq: number) => ({ agentId: agent.id, runId: run.id, seq });
    assert.equal(await kernel.gate.call(at(1), { kind: 'random' }), 7);
    const record = await storage.runs.get(run.id);
    assert.ok(record);

    // A replay that stays within the journal: answered, and nothing is noted against it.
    kernel.lastReplayStarted(record, 1);
    assert.equal(await kernel.gate.call(at(1), { kind: 'random' }), 7);
    assert.equal(kernel.lastReplayEnded(run.id), false);
    assert.equal(kernel.lastReplayEnded(run.id), undefined, 'over once told');

    // One that asks for more: refused before any executor, audited, and noted.
    kernel.lastReplayStarted(record, 1);
    assert.equal(await kernel.gate.call(at(1), { kind: 'random' }), 7);
    const refused = await rejectsWithCode(
      kernel.gate.call(at(2), { kind: 'random' }),
      'KEEL_RUN_ATTEMPTS_EXHAUSTED',
    );
    assert.deepEqual(refused.details, { runId: run.id, seq: 2 });
    assert.equal(counting.calls.length, 1, 'the executor ran for the first attempt only');
    assert.equal(
      (await storage.runs.listJournal(run.id)).length,
      1,
      'the refusal is not journaled',
    );
    const [denied] = await kernel.audit.tail(1);
    assert.deepEqual([denied?.kind, denied?.code], ['syscall.deny', 'KEEL_RUN_ATTEMPTS_EXHAUSTED']);
    assert.equal(kernel.lastReplayEnded(run.id), true);

    // Its new calls stay refused once it is over (one may still be on its way as the run
    // ends), and a call that differs from the journal counts as going past it too.
    kernel.lastReplayStarted(record, 1);
    assert.equal(kernel.lastReplayEnded(run.id), false);
    kernel.runEnded(run.id);
    await rejectsWithCode(
      kernel.gate.call(at(2), { kind: 'random' }),
      'KEEL_RUN_ATTEMPTS_EXHAUSTED',
    );
    kernel.lastReplayStarted(record, 1);
    await rejectsWithCode(
      kernel.gate.call(at(1), { kind: 'random', params: { other: true } }),
      'KEEL_REPLAY_MISMATCH',
    );
    assert.equal(kernel.lastReplayEnded(run.id), true);

    // A call sent just before the run's end is noted before it awaits anything.
    kernel.lastReplayStarted(record, 1);
    const late = kernel.gate.call(at(2), { kind: 'random' });
    assert.equal(kernel.lastReplayEnded(run.id), true);
    await rejectsWithCode(late, 'KEEL_RUN_ATTEMPTS_EXHAUSTED');

    // A counted attempt of the run lifts the refusal.
    kernel.runStarted(record, 1);
    assert.equal(await kernel.gate.call(at(2), { kind: 'random' }), 7);
    assert.equal(counting.calls.length, 2);
  });

  it('times out slow executors and honours the caller’s abort', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    const slow = recorder(
      'tool.call',
      (_intent, context) =>
        new Promise((_resolve, reject) => {
          context.signal.addEventListener('abort', () => reject(context.signal.reason), {
            once: true,
          });
        }),
      { timeoutMs: 50 },
    );
    kernel.registerExecutor(slow.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'slow' }),
      'KEEL_TIMEOUT',
    );
    const controller = new AbortController();
    const pending = kernel.gate.call(
      { agentId: agent.id },
      { kind: 'tool.call', resource: 'slow' },
      { signal: controller.signal },
    );
    controller.abort();
    await rejectsWithCode(pending, 'KEEL_ABORTED');
    const [entry] = await kernel.audit.tail(1);
    assert.equal(entry?.outcome, 'error');
    assert.equal(entry?.code, 'KEEL_ABORTED');
  });

  it('turns executor failures and non-JSON results into typed errors', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'tool.call',
      doExecute: async (intent) => {
        if (intent.resource === 'throws') throw new Error('boom');
        return { value: (() => 1) as unknown as JsonValue };
      },
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    const thrown = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'throws' }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.equal(thrown.details.reason, 'boom');
    const notJson = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'fn' }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.match(notJson.message, /not JSON/);
  });

  it('runs concurrent duplicates of one (runId, seq) once and gives all the same result', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    let executions = 0;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'tool.call',
      doExecute: async () => {
        executions += 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { value: `effect ${executions}` };
      },
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const identity = { agentId: agent.id, runId: run.id, seq: 1 };
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        kernel.gate.call(identity, { kind: 'tool.call', resource: 'deploy' }),
      ),
    );
    assert.deepEqual(results, ['effect 1', 'effect 1', 'effect 1', 'effect 1']);
    assert.equal(executions, 1);
    const allowed = (await kernel.audit.tail(10)).filter((entry) => entry.kind === 'syscall.allow');
    assert.equal(allowed.length, 1);
  });

  it('redacts known secrets from executor failures before the agent, journal or audit see them', async () => {
    const secret = 'sk-live-SUPERSECRET-1234567890';
    await using harness = await createKernelHarness({ secrets: [secret] });
    const { kernel, storage } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'llm.chat',
      doExecute: async () => {
        throw new Error(`401 from provider: invalid key ${secret}`);
      },
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'llm.chat' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const error = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id, runId: run.id, seq: 1 }, { kind: 'llm.chat' }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.ok(!JSON.stringify(error).includes(secret));
    assert.equal(error.details.reason, '401 from provider: invalid key [REDACTED]');
    assert.ok(!JSON.stringify(await storage.runs.listJournal(run.id)).includes(secret));
    assert.ok(!JSON.stringify(await kernel.audit.tail(5)).includes(secret));
    assert.ok(!harness.logLines.join('').includes(secret));
  });

  it('stops waiting for an executor that ignores its signal, and settles its budget', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'tool.call',
      timeoutMs: 50,
      estimate: () => ({ calls: 1 }),
      doExecute: () =>
        new Promise((_resolve, reject) => {
          setTimeout(() => reject(new Error('gave up much later')), 300);
        }),
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'stuck' }),
      'KEEL_TIMEOUT',
    );
    await kernel.budgets.handBackLeases();
    assert.deepEqual(await storage.budgets.listOpenReservations(), []);
    assert.equal((await storage.budgets.get(`agent:${agent.id}`))?.spent.calls, 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.ok(
      harness.logLines.some((line) => line.includes('failed after its call was abandoned')),
    );
  });

  it('treats invalid reported usage and a throwing estimate as failures, leaving no reservation open', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'llm.chat',
      estimate: () => ({ tokens: 100 }),
      doExecute: async () => ({ value: 'hi', usage: { tokens: Number.NaN } }),
    });
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'llm.embed',
      estimate: () => {
        throw new Error('tokenizer missing');
      },
      doExecute: async () => ({ value: [] }),
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'llm.*' }, 'operator:ana');
    const invalid = await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'llm.chat' }),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.match(invalid.message, /reported invalid usage/);
    await kernel.budgets.handBackLeases();
    assert.deepEqual(await storage.budgets.listOpenReservations(), []);
    assert.equal(
      (await storage.budgets.get(`agent:${agent.id}`))?.spent.tokens,
      100,
      'charged the estimate',
    );
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'llm.embed' }),
      'KEEL_EXECUTOR_FAILED',
    );
    const [denied] = await kernel.audit.tail(1);
    assert.deepEqual([denied?.kind, denied?.data.step], ['syscall.deny', 'budget']);
  });

  it('lets syscalls in progress finish at shutdown, cuts the rest, and takes no new ones', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    kernel.registerExecutor({
      specificationVersion: 'v1',
      kind: 'tool.call',
      doExecute: (intent, context) =>
        new Promise((resolve, reject) => {
          if (intent.resource === 'quick') setTimeout(() => resolve({ value: 'finished' }), 30);
          context.signal.addEventListener('abort', () => reject(context.signal.reason), {
            once: true,
          });
        }),
    });
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'tool.call' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const quick = kernel.gate.call(
      { agentId: agent.id, runId: run.id, seq: 1 },
      { kind: 'tool.call', resource: 'quick' },
    );
    const stuck = kernel.gate.call(
      { agentId: agent.id, runId: run.id, seq: 2 },
      { kind: 'tool.call', resource: 'stuck' },
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const closing = kernel.close(200);
    assert.equal(await quick, 'finished');
    await rejectsWithCode(stuck, 'KEEL_SHUTTING_DOWN');
    await closing;
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'tool.call', resource: 'quick' }),
      'KEEL_SHUTTING_DOWN',
    );
    const journal = await storage.runs.listJournal(run.id);
    assert.deepEqual(
      journal.map((entry) => entry.seq),
      [1],
      'the interrupted call is not journaled: a resumed run runs it again',
    );
    const outcomes = (await kernel.audit.tail(2)).map((entry) => [entry.kind, entry.code]);
    assert.deepEqual(outcomes, [
      ['syscall.allow', null],
      ['syscall.allow', 'KEEL_SHUTTING_DOWN'],
    ]);
  });

  it('leaves an audit chain that verifies after many concurrent decisions', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    kernel.registerExecutor(recorder('clock.now', async () => 1).executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:ana');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, (_, index) =>
        kernel.gate.call(
          { agentId: index % 4 === 0 ? 'agt_unknown' : agent.id },
          { kind: 'clock.now' },
        ),
      ),
    );
    assert.equal(outcomes.filter((outcome) => outcome.status === 'rejected').length, 50);
    const verification = await kernel.audit.verify();
    assert.equal(verification.intact, true);
    assert.equal(verification.checked, verification.total);
    assert.equal(verification.total, 202, 'register + grant + one entry per decision');
  });

  it('needs no read of a started run at its first call, and never trusts a head below one it recorded', async () => {
    const reads: string[] = [];
    await using harness = await createKernelHarness({
      cacheTtlMs: 60_000,
      replaceStores: (storage) => ({
        ...storage,
        runs: {
          ...storage.runs,
          get: (id) => {
            reads.push('get');
            return storage.runs.get(id);
          },
          journalHead: (id) => {
            reads.push('journalHead');
            return storage.runs.journalHead(id);
          },
        },
      }),
    });
    const { kernel, storage } = harness;
    const clock = recorder('clock.now', async () => 1_767_225_600_000);
    kernel.registerExecutor(clock.executor);
    const agent = await harness.runningAgent();
    await kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:ana');
    const run = await harness.newRun(agent.id);
    const attempt = await storage.runs.startAttempt(run.id, Date.now(), 3);
    kernel.runStarted(attempt.run, attempt.journalHead);
    const call = (seq: number) =>
      kernel.gate.call({ agentId: agent.id, runId: run.id, seq }, { kind: 'clock.now' });
    await call(1);
    await call(2);
    assert.deepEqual(reads, [], 'the run and its journal head came with the attempt');
    // A head read before calls were recorded (a late answer) does not hide them.
    kernel.runStarted(attempt.run, 0);
    await call(1);
    assert.equal(clock.calls.length, 2, 'seq 1 replays from the journal instead of running again');
  });
});
