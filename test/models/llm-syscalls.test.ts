import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../src/platform/errors/keel-error.ts';
import { canonicalJson } from '../../src/platform/integrity/canonical-json.ts';
import { rejectsWithCode } from '../support/assertions.ts';
import { createModelHarness, type ModelHarness } from '../support/model-harness.ts';

const hello = { messages: [{ role: 'user', content: 'say hello' }] };
const fixedUsage = { inputTokens: 100, outputTokens: 50 };

/**
 * A harness whose chats need a human (the agent's trust level is `standard`), holding one
 * run's conversation at a time: another run's chat lets the first one's go, as a restart of
 * the node or a long wait under load would.
 */
function createApprovingHarness() {
  return createModelHarness({
    conversations: { maxBytes: 1024 * 1024, maxRuns: 1 },
    kernel: {
      approvalRules: [
        { kind: 'llm.chat', resource: 'default', trustLevels: ['standard'], reason: null },
      ],
    },
  });
}

/** Approves what `call` was refused for (`KEEL_APPROVAL_REQUIRED`); resolves with its id. */
async function approveAsked(models: ModelHarness, call: Promise<unknown>): Promise<string> {
  const asked = await rejectsWithCode(call, 'KEEL_APPROVAL_REQUIRED');
  const approvalId = String(asked.details.approvalId);
  await models.harness.kernel.approvals.decide(approvalId, 'approved', 'operator:ana');
  return approvalId;
}

describe('llm.chat through the gate', () => {
  it('answers, prices the reported usage, records it and settles the budget with it', async () => {
    await using models = await createModelHarness({
      script: { turns: [{ reply: { text: 'hello there', usage: fixedUsage } }] },
    });
    const answer = await models.chat(hello);
    assert.equal(answer.text, 'hello there');
    assert.equal(answer.provider, 'mock');
    assert.equal(answer.model, 'mock-small');
    // mock-small costs 1 and 2 micro-dollars a token (input, output) in the bundled table.
    assert.deepEqual(answer.usage, { ...fixedUsage, costMicros: 200, estimated: false });
    const { storage } = models.harness;
    const [summary] = await storage.usage.summarize({ agentId: models.agentId }, [
      'model',
      'provider',
    ]);
    assert.deepEqual(summary, {
      group: { model: 'mock-small', provider: 'mock' },
      calls: 1,
      inputTokens: 100,
      outputTokens: 50,
      costMicros: 200,
      unpricedCalls: 0,
    });
    // What the call spent is written as its lease closes (here handed back), with the lease's
    // unused room; until then the call's share counts as reserved.
    await models.harness.kernel.budgets.handBackLeases();
    const budget = await storage.budgets.get(`agent:${models.agentId}`);
    assert.equal(budget?.spent.tokens, 150);
    assert.equal(budget?.spent.costMicros, 200);
    assert.equal(budget?.spent.calls, 1);
    assert.deepEqual(budget?.reserved, { tokens: 0, costMicros: 0, calls: 0, wallMs: 0 });
    assert.deepEqual(await storage.budgets.listOpenReservations(), []);
  });

  it('audits a chat by its new messages, the conversation’s length and the tools’ names', async () => {
    await using models = await createModelHarness({
      script: {
        turns: [{ reply: { text: 'ok' } }, { reply: { text: 'noted', usage: fixedUsage } }],
      },
    });
    const earlier = 'an earlier message '.repeat(20);
    await models.chat({
      messages: [
        { role: 'system', content: earlier },
        { role: 'user', content: earlier },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: 'the new question' },
      ],
      tools: [{ name: 'read_file', parameters: { type: 'object', properties: {} } }],
      temperature: 0.5,
    });
    const entry = (await models.harness.kernel.audit.tail(10)).find(
      (candidate) => candidate.kind === 'syscall.allow',
    );
    assert.deepEqual(entry?.data.params, {
      temperature: 0.5,
      messages: 4,
      newMessages: [{ role: 'user', content: 'the new question' }],
      tools: ['read_file'],
    });
    assert.ok(!JSON.stringify(entry?.data).includes('an earlier message'));
  });

  it('streams deltas as progress events and returns the same answer', async () => {
    await using models = await createModelHarness({
      script: {
        turns: [
          {
            reply: {
              text: 'let me look at that file for you',
              toolCalls: [{ name: 'read_file', arguments: { path: 'src/a.ts' } }],
            },
          },
        ],
      },
    });
    const events: Record<string, unknown>[] = [];
    const answer = await models.chat(
      { ...hello, stream: true },
      { onProgress: (event) => events.push(event as Record<string, unknown>) },
    );
    assert.equal(events[0]?.type, 'route');
    assert.equal(events.at(-1)?.type, 'finish');
    const streamed = events
      .filter((event) => event.type === 'text')
      .map((event) => event.text)
      .join('');
    assert.equal(streamed, 'let me look at that file for you');
    assert.equal(answer.text, streamed);
    assert.deepEqual(answer.toolCalls, [
      { id: 'call_0_0', name: 'read_file', arguments: { path: 'src/a.ts' } },
    ]);
    assert.equal(answer.finishReason, 'tool-calls');
  });

  it('never lets 50 parallel calls spend past the limit: exactly the calls that fit run', async () => {
    await using models = await createModelHarness({
      script: { turns: [{ reply: { text: 'ok', usage: fixedUsage } }] },
    });
    await models.harness.kernel.budgets.setLimits(
      `agent:${models.agentId}`,
      { calls: 20 },
      'operator:test',
    );
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => models.chat({ ...hello, maxOutputTokens: 64 })),
    );
    const served = results.filter((result) => result.status === 'fulfilled');
    const refused = results.filter(
      (result) =>
        result.status === 'rejected' &&
        isKeelError(result.reason) &&
        result.reason.code === 'KEEL_BUDGET_EXHAUSTED',
    );
    assert.equal(served.length, 20);
    assert.equal(refused.length, 30);
    assert.equal(models.mock.requests().length, 20, 'no refused call reached the provider');
    const budget = await models.harness.storage.budgets.get(`agent:${models.agentId}`);
    assert.equal(budget?.spent.calls, 20);
    assert.equal(budget?.spent.tokens, 20 * 150);
    assert.notEqual(budget?.trippedAt, null);
  });

  it('keeps token and cost spending under the limit under concurrency', async () => {
    // The mock reports usage computed from the text, as a provider does.
    await using models = await createModelHarness({
      script: { turns: [{ reply: { text: 'a short answer of a few tokens' } }] },
    });
    await models.harness.kernel.budgets.setLimits(
      `agent:${models.agentId}`,
      { tokens: 2_000, costMicros: 1_000 },
      'operator:test',
    );
    await Promise.allSettled(
      Array.from({ length: 50 }, () => models.chat({ ...hello, maxOutputTokens: 64 })),
    );
    const budget = await models.harness.storage.budgets.get(`agent:${models.agentId}`);
    assert.ok((budget?.spent.tokens ?? 0) <= 2_000, `spent ${budget?.spent.tokens} tokens`);
    assert.ok((budget?.spent.costMicros ?? 0) <= 1_000, `spent ${budget?.spent.costMicros} µ$`);
    assert.ok((budget?.spent.calls ?? 0) > 0);
    await models.harness.kernel.budgets.handBackLeases();
    assert.deepEqual(await models.harness.storage.budgets.listOpenReservations(), []);
  });

  it('trips the breaker when a call reports more than it reserved and reaches the limit', async () => {
    // The script claims 100 input tokens for a prompt estimated at about a dozen.
    await using models = await createModelHarness({
      script: { turns: [{ reply: { text: 'ok', usage: fixedUsage } }] },
    });
    const scope = `agent:${models.agentId}` as const;
    await models.harness.kernel.budgets.setLimits(scope, { tokens: 200 }, 'operator:test');
    await models.chat({ ...hello, maxOutputTokens: 64 });
    const budget = await models.harness.storage.budgets.get(scope);
    assert.equal(budget?.spent.tokens, 150);
    await models.chat({ ...hello, maxOutputTokens: 8 });
    assert.notEqual((await models.harness.storage.budgets.get(scope))?.trippedAt, null);
    await rejectsWithCode(models.chat({ ...hello, maxOutputTokens: 1 }), 'KEEL_BUDGET_EXHAUSTED');
    const entries = await models.harness.storage.audit.read(0, 100);
    assert.ok(entries.some((entry) => entry.kind === 'budget.trip' && entry.subject === scope));
  });

  it('surfaces a stream cut mid-tool-call as a typed error and charges what was consumed', async () => {
    await using models = await createModelHarness({
      script: {
        turns: [
          {
            reply: {
              text: 'reading',
              toolCalls: [
                { name: 'read_file', arguments: { path: 'a-rather-long-path/to/file.ts' } },
              ],
            },
          },
        ],
      },
    });
    const run = await models.harness.newRun(models.agentId);
    models.mock.injectFault({ fault: { type: 'cut-mid-tool-call' } });
    await rejectsWithCode(
      models.chat({ ...hello, stream: true }, { runId: run.id, seq: 1 }),
      'KEEL_PROVIDER_STREAM_INTERRUPTED',
    );
    const { storage } = models.harness;
    await models.harness.kernel.budgets.handBackLeases();
    assert.deepEqual(await storage.budgets.listOpenReservations(), [], 'no reservation leaks');
    const budget = await storage.budgets.get(`run:${run.id}`);
    assert.equal(budget?.spent.calls, 1);
    assert.ok((budget?.spent.tokens ?? 0) > 0, 'the input and the streamed part are charged');
    const [usage] = await storage.usage.summarize({ runId: run.id }, []);
    assert.equal(usage?.calls, 1, 'the partial call has a usage record');
    const journal = await storage.runs.getJournal(run.id, 1);
    assert.equal(journal?.outcome, 'error');
  });

  it('charges nothing but the call when no provider could take the request', async () => {
    await using models = await createModelHarness();
    models.mock.injectFault({ fault: { type: 'unavailable' }, times: 10 });
    await rejectsWithCode(models.chat(hello), 'KEEL_PROVIDER_UNAVAILABLE');
    await models.harness.kernel.budgets.handBackLeases();
    const budget = await models.harness.storage.budgets.get(`agent:${models.agentId}`);
    assert.deepEqual(
      {
        tokens: budget?.spent.tokens,
        costMicros: budget?.spent.costMicros,
        calls: budget?.spent.calls,
      },
      { tokens: 0, costMicros: 0, calls: 1 },
    );
  });

  it('charges every attempt the provider processed: a malformed answer and its retry', async () => {
    await using models = await createModelHarness({
      script: { turns: [{ reply: { text: 'ok', usage: fixedUsage } }] },
    });
    const scope = `agent:${models.agentId}` as const;
    models.mock.injectFault({ fault: { type: 'malformed-json' } });
    const answer = await models.chat({ ...hello, maxOutputTokens: 64 });
    assert.deepEqual(
      (answer.attempts as { outcome: string }[]).map((attempt) => attempt.outcome),
      ['KEEL_PROVIDER_PROTOCOL', 'ok'],
    );
    const served = (await models.harness.storage.budgets.get(scope))?.spent.tokens ?? 0;
    assert.ok(served > 150 + 64, `the failed attempt is charged too (spent ${served})`);

    models.mock.injectFault({ fault: { type: 'malformed-json' }, times: 2 });
    await rejectsWithCode(models.chat({ ...hello, maxOutputTokens: 64 }), 'KEEL_PROVIDER_PROTOCOL');
    const after = (await models.harness.storage.budgets.get(scope))?.spent.tokens ?? 0;
    assert.ok(after - served >= 2 * 64, `both processed attempts are charged (${after - served})`);
    const [usage] = await models.harness.storage.usage.summarize({ agentId: models.agentId }, []);
    assert.equal(usage?.calls, 2, 'the failed call has a usage record too');
  });

  it('refuses provider/model strings that no alias names', async () => {
    await using models = await createModelHarness();
    await rejectsWithCode(
      models.chat(hello, { alias: 'mock/anything-i-want' }),
      'KEEL_MODEL_UNKNOWN',
    );
    assert.equal((await models.chat(hello, { alias: 'mock/mock-small' })).model, 'mock-small');
  });

  it('refuses an unknown alias before any budget or provider is touched, and audits it', async () => {
    await using models = await createModelHarness();
    const error = await rejectsWithCode(
      models.chat(hello, { alias: 'nope' }),
      'KEEL_MODEL_UNKNOWN',
    );
    assert.match((error as unknown as { hint: string }).hint, /\[models\]/);
    assert.equal(models.mock.requests().length, 0);
    const entries = await models.harness.storage.audit.read(0, 100);
    assert.ok(
      entries.some((entry) => entry.kind === 'syscall.deny' && entry.code === 'KEEL_MODEL_UNKNOWN'),
    );
  });

  it('refuses invalid params with the field named', async () => {
    await using models = await createModelHarness();
    const error = await rejectsWithCode(
      models.chat({ messages: [{ role: 'wizard', content: 'x' }] }),
      'KEEL_INVALID_ARGUMENT',
    );
    assert.match(error.message, /messages\.0/);
    await rejectsWithCode(
      models.chat({ ...hello, maxOutputTokens: 10_000_000 }),
      'KEEL_INVALID_ARGUMENT',
    );
  });

  it('records an unpriced model with an unknown cost, and refuses it while a budget limits cost', async () => {
    await using models = await createModelHarness({
      models: {
        providers: { mock: { kind: 'openai-compatible', base_url: '{{mock}}/v1' } },
        aliases: { default: ['mock/mystery-model'] },
        health_check_interval_seconds: 0,
      },
    });
    const answer = await models.chat(hello);
    assert.equal((answer.usage as { costMicros: unknown }).costMicros, null);
    const [summary] = await models.harness.storage.usage.summarize({ agentId: models.agentId }, []);
    assert.equal(summary?.unpricedCalls, 1);
    await models.harness.kernel.budgets.setLimits(
      `agent:${models.agentId}`,
      { costMicros: 1_000_000 },
      'operator:test',
    );
    await rejectsWithCode(models.chat(hello), 'KEEL_MODEL_UNPRICED');
    assert.equal(models.mock.requests().length, 1, 'the refused call never reached the provider');
  });

  it('learns whether budgets limit cost from the reservation of the call, without reading them again', async () => {
    let budgetReads = 0;
    await using models = await createModelHarness({
      models: {
        providers: { mock: { kind: 'openai-compatible', base_url: '{{mock}}/v1' } },
        aliases: { default: ['mock/mystery-model'] },
        health_check_interval_seconds: 0,
      },
      kernel: {
        replaceStores: (storage) => ({
          ...storage,
          budgets: {
            ...storage.budgets,
            get: (scope) => {
              budgetReads += 1;
              return storage.budgets.get(scope);
            },
          },
        }),
      },
    });
    const { kernel } = models.harness;
    const free = await models.harness.newRun(models.agentId);
    await models.chat(hello, { runId: free.id, seq: 1 });
    // A run whose own budget limits cost: the reservation of its first call says so.
    const priced = await models.harness.newRun(models.agentId);
    await kernel.budgets.setLimits(`run:${priced.id}`, { costMicros: 1_000 }, 'operator:test');
    const reads = budgetReads;
    await rejectsWithCode(models.chat(hello, { runId: priced.id, seq: 1 }), 'KEEL_MODEL_UNPRICED');
    assert.equal(budgetReads, reads, 'no budget was read apart from the reservation');
    assert.equal(models.mock.requests().length, 1, 'the refused call never reached the provider');
  });

  it('lets a child run spend only what its parent run has left', async () => {
    await using models = await createModelHarness({
      script: { turns: [{ reply: { text: 'ok', usage: fixedUsage } }] },
    });
    const { kernel, storage } = models.harness;
    const parent = await models.harness.newRun(models.agentId);
    const child = await models.harness.newRun(models.agentId);
    await kernel.budgets.setLimits(`run:${parent.id}`, { calls: 3 }, 'operator:test');
    await models.chat(hello, { runId: parent.id, seq: 1 });
    const inherited = await kernel.budgets.inherit(
      `run:${child.id}`,
      `run:${parent.id}`,
      'operator:test',
    );
    assert.deepEqual(inherited.limits, { calls: 2 });
    await models.chat(hello, { runId: child.id, seq: 1 });
    await models.chat(hello, { runId: child.id, seq: 2 });
    await rejectsWithCode(models.chat(hello, { runId: child.id, seq: 3 }), 'KEEL_BUDGET_EXHAUSTED');
    assert.equal((await storage.budgets.get(`run:${parent.id}`))?.spent.calls, 3);
  });

  it('refuses to hand out an answer whose usage cannot be recorded', async () => {
    await using models = await createModelHarness({
      kernel: {
        replaceStores: (storage) => ({
          ...storage,
          usage: { ...storage.usage, record: () => Promise.reject(new Error('disk on fire')) },
        }),
      },
    });
    await assert.rejects(models.chat(hello), /disk on fire/);
    await models.harness.kernel.budgets.handBackLeases();
    assert.deepEqual(await models.harness.storage.budgets.listOpenReservations(), []);
  });

  it('continues a run’s conversation: the model gets all of it, the audit only what is new', async () => {
    // No script: the mock echoes the latest user message and counts every message it got.
    await using models = await createModelHarness();
    const run = await models.harness.newRun(models.agentId);
    const system = { role: 'system', content: 'You answer in one line. '.repeat(10) };
    const first = await models.chat(
      { messages: [system, { role: 'user', content: 'first question' }] },
      { runId: run.id, seq: 1 },
    );
    assert.equal(first.seq, 1);
    const added = [
      { role: 'assistant', content: first.text },
      { role: 'user', content: 'second question' },
    ];
    const second = await models.chat(
      { continues: 1, messages: added, temperature: 0.2 },
      { runId: run.id, seq: 2 },
    );
    assert.equal(second.text, 'mock reply to: second question');
    assert.equal(second.seq, 2);
    // The same conversation sent whole, outside any run, costs the same input.
    const whole = await models.chat({
      messages: [system, { role: 'user', content: 'first question' }, ...added],
      temperature: 0.2,
    });
    assert.equal(whole.seq, undefined);
    assert.deepEqual(
      (second.usage as { inputTokens: number }).inputTokens,
      (whole.usage as { inputTokens: number }).inputTokens,
    );
    // And a third call continues the second.
    const third = await models.chat(
      {
        continues: 2,
        messages: [
          { role: 'assistant', content: second.text },
          { role: 'user', content: 'third' },
        ],
      },
      { runId: run.id, seq: 3 },
    );
    assert.equal(third.text, 'mock reply to: third');
    const allowed = (await models.harness.kernel.audit.tail(20)).filter(
      (entry) => entry.kind === 'syscall.allow' && entry.runId === run.id,
    );
    assert.deepEqual(
      allowed.map((entry) => entry.data.params),
      [
        { messages: 2, newMessages: [system, { role: 'user', content: 'first question' }] },
        {
          continues: 1,
          temperature: 0.2,
          messages: 2,
          newMessages: [{ role: 'user', content: 'second question' }],
        },
        { continues: 2, messages: 2, newMessages: [{ role: 'user', content: 'third' }] },
      ],
    );
  });

  it('refuses to continue a conversation the node does not hold, before any provider call', async () => {
    await using models = await createModelHarness();
    const run = await models.harness.newRun(models.agentId);
    const other = await models.harness.newRun(models.agentId);
    await models.chat(hello, { runId: run.id, seq: 1 });
    await models.chat(
      { continues: 1, messages: [{ role: 'user', content: 'again' }] },
      { runId: run.id, seq: 2 },
    );
    const next = { messages: [{ role: 'user', content: 'more' }] };
    // Another run's conversation, an earlier call's (the run's latest is 2's), a refused call's.
    for (const [runId, seq, continues] of [
      [other.id, 1, 1],
      [run.id, 3, 1],
      [run.id, 4, 3],
    ] as const) {
      const error = await rejectsWithCode(
        models.chat({ ...next, continues }, { runId, seq }),
        'KEEL_CONVERSATION_UNKNOWN',
      );
      assert.equal(error.details.field, 'continues');
    }
    await rejectsWithCode(models.chat({ ...next, continues: 1 }), 'KEEL_INVALID_ARGUMENT');
    await rejectsWithCode(
      models.chat({ ...next, continues: 0 }, { runId: run.id, seq: 5 }),
      'KEEL_INVALID_ARGUMENT',
    );
    assert.equal(models.mock.requests().length, 2, 'no refused call reached the provider');
    // The refusals are not journaled: a replayed run asks again, and is refused again.
    assert.equal(await models.harness.storage.runs.journalHead(run.id), 2);
  });

  it('holds a continued conversation to what a whole call could carry', async () => {
    // The harness allows intents of 64 KiB.
    await using models = await createModelHarness();
    const run = await models.harness.newRun(models.agentId);
    const long = (tag: string) => ({ role: 'user', content: `${tag} ${'x'.repeat(30_000)}` });
    const messages = [long('one')];
    await models.chat({ messages }, { runId: run.id, seq: 1 });
    messages.push({ role: 'assistant', content: 'ok' }, long('two'));
    await models.chat({ continues: 1, messages: messages.slice(1) }, { runId: run.id, seq: 2 });
    messages.push({ role: 'assistant', content: 'ok' }, long('three'));
    const error = await rejectsWithCode(
      models.chat({ continues: 2, messages: messages.slice(3) }, { runId: run.id, seq: 3 }),
      'KEEL_PAYLOAD_TOO_LARGE',
    );
    // The size it names is the whole call's (give or take `continues`), which is refused too.
    const whole = Buffer.byteLength(
      canonicalJson({ kind: 'llm.chat', resource: 'default', params: { messages } }),
    );
    assert.ok(
      Number(error.details.size) >= whole && Number(error.details.size) <= whole + 16,
      `${String(error.details.size)} against ${whole}`,
    );
    await rejectsWithCode(
      models.chat({ messages }, { runId: run.id, seq: 3 }),
      'KEEL_PAYLOAD_TOO_LARGE',
    );
  });

  it('continues no chat an approver edited: the next one goes whole, as the agent has it', async () => {
    await using models = await createModelHarness({
      kernel: {
        approvalRules: [
          { kind: 'llm.chat', resource: 'default', trustLevels: ['standard'], reason: null },
        ],
      },
    });
    const { kernel } = models.harness;
    const run = await models.harness.newRun(models.agentId);
    const asked = await rejectsWithCode(
      models.chat(
        { messages: [{ role: 'user', content: 'my card is 4111' }] },
        {
          runId: run.id,
          seq: 1,
        },
      ),
      'KEEL_APPROVAL_REQUIRED',
    );
    await kernel.approvals.decide(
      String(asked.details.approvalId),
      'approved',
      'operator:ana',
      'redacted',
      {
        messages: [{ role: 'user', content: 'my card is [redacted]' }],
      },
    );
    const edited = await models.chat(
      { messages: [{ role: 'user', content: 'my card is 4111' }] },
      { runId: run.id, seq: 1 },
    );
    assert.equal(edited.text, 'mock reply to: my card is [redacted]');
    await rejectsWithCode(
      models.chat(
        {
          continues: 1,
          messages: [
            { role: 'assistant', content: String(edited.text) },
            { role: 'user', content: 'and?' },
          ],
        },
        { runId: run.id, seq: 2 },
      ),
      'KEEL_CONVERSATION_UNKNOWN',
    );
  });

  it('asks a human once for a continued chat whose conversation the node let go while it waited', async () => {
    await using models = await createApprovingHarness();
    const { kernel } = models.harness;
    const approved = async (params: Record<string, unknown>, runId: string, seq: number) => {
      await approveAsked(models, models.chat(params, { runId, seq }));
      return models.chat(params, { runId, seq });
    };
    const run = await models.harness.newRun(models.agentId);
    const other = await models.harness.newRun(models.agentId);
    const first = await approved(hello, run.id, 1);
    const added = [
      { role: 'assistant', content: String(first.text) },
      { role: 'user', content: 'and then?' },
    ];
    const continued = { continues: 1, messages: added };
    const asked = await rejectsWithCode(
      models.chat(continued, { runId: run.id, seq: 2 }),
      'KEEL_APPROVAL_REQUIRED',
    );
    const approvalId = String(asked.details.approvalId);
    // While a human decides, the node lets the run's conversation go.
    await approved(hello, other.id, 1);
    await kernel.approvals.decide(approvalId, 'approved', 'operator:ana');
    const refused = await rejectsWithCode(
      models.chat(continued, { runId: run.id, seq: 2 }),
      'KEEL_CONVERSATION_UNKNOWN',
    );
    assert.equal(refused.details.seq, 2, 'the refusal names the call, for fallbackOf');
    // Sent whole as the stand-in of call 2, it runs on the approval call 2 was given.
    const whole = { fallbackOf: 2, messages: [...hello.messages, ...added] };
    const answer = await models.chat(whole, { runId: run.id, seq: 3 });
    assert.equal(answer.text, 'mock reply to: and then?');
    const approvals = await kernel.approvals.list({ agentId: models.agentId });
    assert.equal(approvals.length, 3, 'one approval a call: the run’s two and the other run’s');
    const used = approvals.find((approval) => approval.id === approvalId);
    assert.notEqual(used?.consumedAt, null, 'call 2’s approval was used by its stand-in');
    // It is used up: the stand-in sent again at another seq is asked about anew.
    await rejectsWithCode(models.chat(whole, { runId: run.id, seq: 4 }), 'KEEL_APPROVAL_REQUIRED');
  });

  it('shares an approval between forms of a chat only when they send the model the same', async () => {
    await using models = await createApprovingHarness();
    const run = await models.harness.newRun(models.agentId);
    const other = await models.harness.newRun(models.agentId);
    await approveAsked(models, models.chat(hello, { runId: run.id, seq: 1 }));
    await models.chat(hello, { runId: run.id, seq: 1 });
    const next = { role: 'user', content: 'next' };
    const approvalOf2 = await approveAsked(
      models,
      models.chat({ continues: 1, messages: [next] }, { runId: run.id, seq: 2 }),
    );
    // The run's conversation goes.
    await approveAsked(models, models.chat(hello, { runId: other.id, seq: 1 }));
    await models.chat(hello, { runId: other.id, seq: 1 });
    // A stand-in that changed the conversation, a setting or the alias's streaming is a call
    // nobody approved: it is asked about anew, and nothing reaches the model.
    const requests = models.mock.requests().length;
    for (const whole of [
      { fallbackOf: 2, messages: [{ role: 'user', content: 'other' }, next] },
      { fallbackOf: 2, messages: [...hello.messages, next], temperature: 1 },
      { fallbackOf: 2, messages: [...hello.messages, next], stream: true },
    ]) {
      const asked = await rejectsWithCode(
        models.chat(whole, { runId: run.id, seq: 3 }),
        'KEEL_APPROVAL_REQUIRED',
      );
      assert.notEqual(asked.details.approvalId, approvalOf2);
    }
    assert.equal(models.mock.requests().length, requests);
    // Call 1 ran: nothing stands in for it.
    await rejectsWithCode(
      models.chat(
        { fallbackOf: 1, messages: [...hello.messages, next] },
        { runId: run.id, seq: 3 },
      ),
      'KEEL_INVALID_ARGUMENT',
    );
    // The same conversation and settings use it.
    const answer = await models.chat(
      { fallbackOf: 2, messages: [...hello.messages, next] },
      { runId: run.id, seq: 3 },
    );
    assert.equal(answer.text, 'mock reply to: next');
  });

  it('refuses fallbackOf outside a run, naming a later call, or with continues', async () => {
    await using models = await createModelHarness();
    const run = await models.harness.newRun(models.agentId);
    await models.chat(hello, { runId: run.id, seq: 1 });
    for (const [params, identity] of [
      [{ ...hello, fallbackOf: 1 }, {}],
      [
        { ...hello, fallbackOf: 2 },
        { runId: run.id, seq: 2 },
      ],
      [
        { ...hello, fallbackOf: 3 },
        { runId: run.id, seq: 2 },
      ],
      [
        { ...hello, fallbackOf: 1, continues: 1 },
        { runId: run.id, seq: 2 },
      ],
      [
        { ...hello, fallbackOf: 0 },
        { runId: run.id, seq: 2 },
      ],
    ] as const) {
      const error = await rejectsWithCode(models.chat(params, identity), 'KEEL_INVALID_ARGUMENT');
      assert.match(String(error.details.field), /fallbackOf/);
    }
    assert.equal(models.mock.requests().length, 1, 'no refused call reached the provider');
  });

  it('replays a journaled call without calling the provider again', async () => {
    await using models = await createModelHarness();
    const run = await models.harness.newRun(models.agentId);
    const first = await models.chat(hello, { runId: run.id, seq: 1 });
    const again = await models.chat(hello, { runId: run.id, seq: 1 });
    assert.deepEqual(again, first);
    assert.equal(models.mock.requests().length, 1);
  });
});
