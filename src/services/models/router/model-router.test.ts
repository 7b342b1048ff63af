import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode, throwsWithCode } from '../../../../test/support/assertions.ts';
import { chatOf, startRouterRig, waitUntil } from '../../../../test/support/model-router-rig.ts';
import { silentLogger } from '../../../../test/support/silent-logger.ts';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { parseMockScript } from '../mock/mock-script.ts';
import { OpenAiCompatibleProvider } from '../providers/openai-compatible-provider.ts';
import { ManualScheduler } from './manual-scheduler.ts';
import { ModelRouter, type RouteTarget } from './model-router.ts';

const logger = silentLogger();
const open = () => ({ signal: new AbortController().signal });

function offlineRouter(aliases: ReadonlyMap<string, readonly RouteTarget[]>): ModelRouter {
  // Resolution never calls a provider, so these point nowhere.
  const provider = (id: string) =>
    new OpenAiCompatibleProvider({
      providerId: id,
      baseUrl: 'http://127.0.0.1:9/v1',
      timeoutMs: 1_000,
      maxResponseBytes: 1_024,
    });
  return new ModelRouter({
    providers: new Map([
      ['openai', provider('openai')],
      ['local', provider('local')],
    ]),
    aliases,
    retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0, maxRetryAfterMs: 1_000 },
    deadlineMs: 1_000,
    breaker: { failureThreshold: 1, cooldownMs: 1_000 },
    scheduler: new ManualScheduler(),
    logger,
  });
}

describe('ModelRouter.resolve', () => {
  const smart = [
    { provider: 'openai', model: 'gpt-4o-mini' },
    { provider: 'local', model: 'llama3.2' },
  ];

  it('resolves an alias to its targets in fallback order', () => {
    const router = offlineRouter(new Map([['smart', smart]]));
    assert.deepEqual(router.resolve('smart'), smart);
  });

  it('resolves provider/model written out to that one target when an alias has it', () => {
    const router = offlineRouter(
      new Map([
        ['smart', smart],
        ['nested', [{ provider: 'openai', model: 'org/model' }]],
      ]),
    );
    assert.deepEqual(router.resolve('local/llama3.2'), [{ provider: 'local', model: 'llama3.2' }]);
    assert.deepEqual(router.resolve('openai/org/model'), [
      { provider: 'openai', model: 'org/model' },
    ]);
  });

  it('refuses provider/model that no alias names: callers cannot pick unconfigured models', () => {
    const router = offlineRouter(new Map([['smart', smart]]));
    throwsWithCode(() => router.resolve('local/qwen2.5:7b'), 'KEEL_MODEL_UNKNOWN');
  });

  it('refuses a name that is neither an alias nor a configured provider/model', () => {
    const router = offlineRouter(new Map([['smart', smart]]));
    const error = throwsWithCode(() => router.resolve('clever'), 'KEEL_MODEL_UNKNOWN');
    assert.deepEqual((error as unknown as { details: unknown }).details, {
      model: 'clever',
      aliases: ['smart'],
    });
    throwsWithCode(() => router.resolve('elsewhere/gpt-4o'), 'KEEL_MODEL_UNKNOWN');
    throwsWithCode(() => router.resolve('/gpt-4o'), 'KEEL_MODEL_UNKNOWN');
  });

  it('refuses at construction an alias that names an unconfigured provider', () => {
    throwsWithCode(
      () => offlineRouter(new Map([['smart', [...smart, { provider: 'azure', model: 'gpt-4o' }]]])),
      'KEEL_CONFIG_INVALID',
    );
  });
});

describe('ModelRouter failover', () => {
  it('fails over to the second provider when the first answers 503', async (t) => {
    const rig = await startRouterRig({ logger });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'unavailable' } });

    const answer = await rig.router.chat('smart', chatOf('hello'), open());

    assert.equal(answer.text, 'mock reply to: hello');
    assert.deepEqual(answer.target, { provider: 'beta', model: 'mock-small' });
    assert.deepEqual(answer.attempts, [
      { provider: 'alpha', model: 'mock-small', outcome: 'KEEL_PROVIDER_UNAVAILABLE' },
      { provider: 'beta', model: 'mock-small', outcome: 'ok' },
    ]);
    assert.deepEqual(
      rig
        .mock('alpha')
        .requests()
        .map((request) => request.status),
      [503],
    );
  });

  it('skips an excluded target without calling it, and fails with its reason when none is left', async (t) => {
    const rig = await startRouterRig({ logger });
    t.after(() => rig.close());
    const unpriced = new KeelError('KEEL_MODEL_UNPRICED', 'alpha has no price');
    const skipAlpha = (target: { provider: string }) =>
      target.provider === 'alpha' ? unpriced : undefined;

    const answer = await rig.router.chat('smart', chatOf('hello'), {
      ...open(),
      exclude: skipAlpha,
    });

    assert.deepEqual(answer.target, { provider: 'beta', model: 'mock-small' });
    assert.equal(answer.attempts[0]?.outcome, 'excluded: KEEL_MODEL_UNPRICED');
    assert.equal(rig.mock('alpha').requests().length, 0);
    const error = await rejectsWithCode(
      rig.router.chat('smart', chatOf('hello'), { ...open(), exclude: () => unpriced }),
      'KEEL_MODEL_UNPRICED',
    );
    assert.equal((error.details.attempts as unknown[]).length, 2);
    assert.equal(rig.mock('beta').requests().length, 1);
  });

  it('tries the first provider maxAttempts times before failing over', async (t) => {
    const rig = await startRouterRig({ logger, retry: { maxAttempts: 2 } });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'server-error' }, times: 2 });

    const answer = await rig.router.chat('smart', chatOf('hello'), open());

    assert.deepEqual(
      answer.attempts.map((attempt) => `${attempt.provider}: ${attempt.outcome}`),
      ['alpha: KEEL_PROVIDER_UNAVAILABLE', 'alpha: KEEL_PROVIDER_UNAVAILABLE', 'beta: ok'],
    );
    assert.equal(rig.mock('alpha').requests().length, 2);
    assert.equal(rig.mock('beta').requests().length, 1);
  });

  it('fails with the last error and every attempt when no provider can serve', async (t) => {
    const rig = await startRouterRig({ logger, retry: { maxAttempts: 2 } });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'unavailable' }, times: 2 });
    rig.mock('beta').injectFault({ fault: { type: 'rate-limit', retryAfterSeconds: 600 } });

    const error = await rejectsWithCode(
      rig.router.chat('smart', chatOf('hello'), open()),
      'KEEL_PROVIDER_RATE_LIMITED',
    );

    assert.equal((error as unknown as { retryAfterMs: number }).retryAfterMs, 600_000);
    assert.equal(error.details.model, 'smart');
    assert.deepEqual(error.details.attempts, [
      { provider: 'alpha', model: 'mock-small', outcome: 'KEEL_PROVIDER_UNAVAILABLE' },
      { provider: 'alpha', model: 'mock-small', outcome: 'KEEL_PROVIDER_UNAVAILABLE' },
      { provider: 'beta', model: 'mock-small', outcome: 'KEEL_PROVIDER_RATE_LIMITED' },
    ]);
  });
});

describe('ModelRouter retries', () => {
  it('waits at least the Retry-After before retrying the same provider', async (t) => {
    const rig = await startRouterRig({
      logger,
      retry: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 1_000 },
    });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'rate-limit', retryAfterSeconds: 2 } });

    const call = rig.router.chat('smart', chatOf('hello'), open());
    await waitUntil(() => rig.scheduler.pendingSleeps === 1, 'the router sleeps before its retry');
    assert.equal(rig.scheduler.sleeps.length, 1);
    assert.ok((rig.scheduler.sleeps[0] ?? 0) >= 2_000, `slept ${rig.scheduler.sleeps[0]} ms`);
    assert.equal(rig.mock('alpha').requests().length, 1);
    await rig.scheduler.advance(2_000);
    const answer = await call;

    assert.deepEqual(
      answer.attempts.map((attempt) => `${attempt.provider}: ${attempt.outcome}`),
      ['alpha: KEEL_PROVIDER_RATE_LIMITED', 'alpha: ok'],
    );
    assert.equal(rig.mock('beta').requests().length, 0);
  });

  it('fails over at once when Retry-After is longer than maxRetryAfterMs', async (t) => {
    const rig = await startRouterRig({
      logger,
      retry: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 10_000 },
    });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'rate-limit', retryAfterSeconds: 60 } });

    const answer = await rig.router.chat('smart', chatOf('hello'), open());

    assert.deepEqual(
      answer.attempts.map((attempt) => `${attempt.provider}: ${attempt.outcome}`),
      ['alpha: KEEL_PROVIDER_RATE_LIMITED', 'beta: ok'],
    );
    assert.deepEqual(rig.scheduler.sleeps, []);
  });

  it('never retries nor fails over a call its caller aborted', async (t) => {
    const rig = await startRouterRig({ logger, retry: { maxAttempts: 2 } });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'timeout' } });
    const controller = new AbortController();

    const call = rig.router.chat('smart', chatOf('hello'), { signal: controller.signal });
    await waitUntil(() => rig.mock('alpha').requests().length === 1, 'alpha has the request');
    controller.abort();
    await rejectsWithCode(call, 'KEEL_ABORTED');

    assert.equal(rig.mock('alpha').requests().length, 1);
    assert.equal(rig.mock('beta').requests().length, 0);
    assert.equal(rig.router.breakers().get('alpha')?.snapshot().consecutiveFailures, 0);
  });

  it('never retries nor fails over a request the provider rejected', async (t) => {
    const script = parseMockScript({
      turns: [{ expect: { contains: 'the magic word' }, reply: { text: 'granted' } }],
    });
    const rig = await startRouterRig({ logger, script, retry: { maxAttempts: 2 } });
    t.after(() => rig.close());

    const error = await rejectsWithCode(
      rig.router.chat('smart', chatOf('hello'), open()),
      'KEEL_PROVIDER_REJECTED',
    );

    assert.equal(error.details.status, 400);
    assert.equal(rig.mock('alpha').requests().length, 1);
    assert.equal(rig.mock('beta').requests().length, 0);
  });

  it('ends the call at its total deadline with KEEL_TIMEOUT', async (t) => {
    const rig = await startRouterRig({ logger, retry: { maxAttempts: 2 } });
    t.after(() => rig.close());
    for (const id of ['alpha', 'beta']) {
      rig.mock(id).injectFault({ fault: { type: 'timeout' }, times: 10 });
    }

    const error = await rejectsWithCode(
      rig.router.chat('smart', chatOf('hello'), { ...open(), deadlineMs: 200 }),
      'KEEL_TIMEOUT',
    );

    assert.deepEqual(error.details.attempts, [
      { provider: 'alpha', model: 'mock-small', outcome: 'KEEL_TIMEOUT' },
    ]);
    assert.equal(rig.mock('beta').requests().length, 0);
  });
});

describe('ModelRouter circuit breakers', () => {
  async function failingAlpha(t: { after: (fn: () => Promise<void>) => void }) {
    const rig = await startRouterRig({
      logger,
      breaker: { failureThreshold: 2, cooldownMs: 30_000 },
    });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'unavailable' }, times: 2 });
    for (let call = 0; call < 2; call += 1) {
      const answer = await rig.router.chat('smart', chatOf('hello'), open());
      assert.deepEqual(answer.target, { provider: 'beta', model: 'mock-small' });
    }
    return rig;
  }

  it('skips a provider whose breaker opened, without sending it a request', async (t) => {
    const rig = await failingAlpha(t);
    assert.equal(rig.router.breakers().get('alpha')?.state, 'open');

    const answer = await rig.router.chat('smart', chatOf('hello'), open());

    assert.deepEqual(answer.attempts, [
      { provider: 'alpha', model: 'mock-small', outcome: 'circuit-open' },
      { provider: 'beta', model: 'mock-small', outcome: 'ok' },
    ]);
    assert.equal(rig.mock('alpha').requests().length, 2);
  });

  it('lets one probe through after the cooldown and closes on its success', async (t) => {
    const rig = await failingAlpha(t);
    await rig.scheduler.advance(30_000);

    // A stream holds its permit until it ends, so the probe is still in flight meanwhile.
    const probe = rig.router.stream('smart', chatOf('probe'), open())[Symbol.asyncIterator]();
    const route = await probe.next();
    assert.deepEqual(route.value, {
      type: 'route',
      target: { provider: 'alpha', model: 'mock-small' },
      attempts: [{ provider: 'alpha', model: 'mock-small', outcome: 'ok' }],
    });
    assert.equal(rig.router.breakers().get('alpha')?.state, 'half-open');
    const meanwhile = await rig.router.chat('smart', chatOf('hello'), open());
    assert.deepEqual(
      meanwhile.attempts.map((attempt) => attempt.outcome),
      ['circuit-open', 'ok'],
    );
    for (let next = await probe.next(); next.done !== true; next = await probe.next());

    assert.equal(rig.router.breakers().get('alpha')?.state, 'closed');
    const after = await rig.router.chat('smart', chatOf('hello'), open());
    assert.deepEqual(after.target, { provider: 'alpha', model: 'mock-small' });
  });

  it('re-opens the breaker when the probe fails', async (t) => {
    const rig = await failingAlpha(t);
    await rig.scheduler.advance(30_000);
    rig.mock('alpha').injectFault({ fault: { type: 'unavailable' } });

    const probed = await rig.router.chat('smart', chatOf('hello'), open());
    assert.deepEqual(
      probed.attempts.map((attempt) => `${attempt.provider}: ${attempt.outcome}`),
      ['alpha: KEEL_PROVIDER_UNAVAILABLE', 'beta: ok'],
    );
    assert.equal(rig.router.breakers().get('alpha')?.state, 'open');

    const skipped = await rig.router.chat('smart', chatOf('hello'), open());
    assert.equal(skipped.attempts[0]?.outcome, 'circuit-open');
    assert.equal(rig.mock('alpha').requests().length, 3);
  });
});

describe('ModelRouter.embed', () => {
  const embedder = new Map([
    [
      'embedder',
      [
        { provider: 'claude', model: 'claude-3-5-haiku' },
        { provider: 'alpha', model: 'mock-embed' },
      ],
    ],
  ]);

  it('embeds with a provider that has embeddings', async (t) => {
    const rig = await startRouterRig({
      logger,
      aliases: new Map([['embedder', [{ provider: 'alpha', model: 'mock-embed' }]]]),
    });
    t.after(() => rig.close());

    const result = await rig.router.embed('embedder', { inputs: ['one', 'two'] }, open());

    assert.equal(result.embeddings.length, 2);
    assert.equal(result.embeddings[0]?.length, 8);
    assert.deepEqual(result.target, { provider: 'alpha', model: 'mock-embed' });
    assert.deepEqual(
      rig
        .mock('alpha')
        .requests()
        .map((request) => request.route),
      ['embed'],
    );
  });

  it('skips an Anthropic provider, which has no embeddings, to the next target', async (t) => {
    const rig = await startRouterRig({
      logger,
      providers: [
        { id: 'claude', kind: 'anthropic' },
        { id: 'alpha', kind: 'openai-compatible' },
      ],
      aliases: embedder,
      retry: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 1_000 },
    });
    t.after(() => rig.close());

    const result = await rig.router.embed('embedder', { inputs: ['one'] }, open());

    assert.deepEqual(result.target, { provider: 'alpha', model: 'mock-embed' });
    assert.deepEqual(result.attempts, [
      { provider: 'claude', model: 'claude-3-5-haiku', outcome: 'KEEL_PROVIDER_REJECTED' },
      { provider: 'alpha', model: 'mock-embed', outcome: 'ok' },
    ]);
    assert.deepEqual(rig.scheduler.sleeps, []);
    assert.equal(rig.mock('claude').requests().length, 0);
    assert.equal(rig.router.breakers().get('claude')?.state, 'closed');
  });
});
