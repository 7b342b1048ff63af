import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { ManualScheduler } from './manual-scheduler.ts';
import { RateLimiter, type RateLimiterOptions, type RateLimitPermit } from './rate-limiter.ts';

const never = new AbortController().signal;

function setup(options: RateLimiterOptions) {
  const scheduler = new ManualScheduler();
  return { scheduler, limiter: new RateLimiter(options, scheduler) };
}

function rateLimited(
  expected: Partial<{ retryAfterMs: number; limit: string; reason: string; retryable: boolean }>,
) {
  return (error: unknown): boolean => {
    assert.ok(isKeelError(error));
    assert.equal(error.code, 'KEEL_RATE_LIMITED');
    if (expected.retryAfterMs !== undefined)
      assert.equal(error.retryAfterMs, expected.retryAfterMs);
    if (expected.limit !== undefined) assert.equal(error.details.limit, expected.limit);
    if (expected.reason !== undefined) assert.equal(error.details.reason, expected.reason);
    if (expected.retryable !== undefined) assert.equal(error.retryable, expected.retryable);
    return true;
  };
}

function coded(code: string) {
  return (error: unknown): boolean => isKeelError(error) && error.code === code;
}

describe('RateLimiter', () => {
  it('grants at once when no limit is configured', async () => {
    const { limiter } = setup({ mode: 'refuse' });
    for (let index = 0; index < 1_000; index += 1) await limiter.acquire(1e9, never);
    assert.deepEqual(limiter.snapshot(), {
      availableRequests: undefined,
      availableTokens: undefined,
      queueLength: 0,
    });
  });

  it('refuses above the request burst with the time until the next request fits', async () => {
    const { scheduler, limiter } = setup({ requestsPerMinute: 2, mode: 'refuse' });
    await limiter.acquire(0, never);
    await limiter.acquire(0, never);
    await assert.rejects(
      limiter.acquire(0, never),
      rateLimited({ retryAfterMs: 30_000, limit: 'requests', retryable: true }),
    );
    await scheduler.advance(30_000);
    await limiter.acquire(0, never);
  });

  it('refuses with the time until both requests and tokens are available', async () => {
    const { limiter } = setup({ requestsPerMinute: 60, tokensPerMinute: 600, mode: 'refuse' });
    await limiter.acquire(500, never);
    await assert.rejects(
      limiter.acquire(200, never),
      rateLimited({ retryAfterMs: 10_000, limit: 'tokens' }),
    );
    const { limiter: slowRequests } = setup({
      requestsPerMinute: 1,
      tokensPerMinute: 600,
      mode: 'refuse',
    });
    await slowRequests.acquire(500, never);
    await assert.rejects(
      slowRequests.acquire(200, never),
      rateLimited({ retryAfterMs: 60_000, limit: 'requests' }),
    );
  });

  it('refuses at once, as not retryable, a request larger than the tokens bucket', async () => {
    for (const mode of ['queue', 'refuse'] as const) {
      const { limiter } = setup({ tokensPerMinute: 600, mode });
      await assert.rejects(
        limiter.acquire(601, never),
        rateLimited({ limit: 'tokens', retryable: false }),
      );
      assert.equal(limiter.snapshot().queueLength, 0);
    }
  });

  it('queues a caller until its request fits', async () => {
    const { scheduler, limiter } = setup({ requestsPerMinute: 60, mode: 'queue' });
    for (let index = 0; index < 60; index += 1) await limiter.acquire(0, never);
    let grantedAt: number | undefined;
    const queued = limiter.acquire(0, never).then(() => {
      grantedAt = scheduler.now();
    });
    await scheduler.advance(999);
    assert.equal(grantedAt, undefined);
    assert.equal(limiter.snapshot().queueLength, 1);
    await scheduler.advance(1);
    await queued;
    assert.equal(grantedAt, 1_000);
  });

  it('serves queued callers first come, first served, so a small one never overtakes a large one', async () => {
    const { scheduler, limiter } = setup({
      tokensPerMinute: 600,
      mode: 'queue',
      maxQueueMs: 60_000,
    });
    await limiter.acquire(600, never);
    const order: Array<[string, number]> = [];
    const large = limiter.acquire(500, never).then(() => order.push(['large', scheduler.now()]));
    const small = limiter.acquire(10, never).then(() => order.push(['small', scheduler.now()]));
    await scheduler.advance(60_000);
    await Promise.all([large, small]);
    assert.deepEqual(order, [
      ['large', 50_000],
      ['small', 51_000],
    ]);
  });

  it('refuses at once a caller whose turn would come after maxQueueMs, counting those ahead', async () => {
    const { scheduler, limiter } = setup({
      tokensPerMinute: 600,
      mode: 'queue',
      maxQueueMs: 30_000,
    });
    await limiter.acquire(600, never);
    const ahead = limiter.acquire(200, never);
    await assert.rejects(
      limiter.acquire(200, never),
      rateLimited({ retryAfterMs: 40_000, limit: 'tokens', reason: 'queue-wait' }),
    );
    assert.equal(limiter.snapshot().queueLength, 1);
    await scheduler.advance(20_000);
    await ahead;
  });

  it('refuses at once when the queue is full', async () => {
    const { scheduler, limiter } = setup({
      requestsPerMinute: 1,
      mode: 'queue',
      maxQueueMs: 600_000,
      maxQueueLength: 1,
    });
    await limiter.acquire(0, never);
    const queued = limiter.acquire(0, never);
    await assert.rejects(
      limiter.acquire(0, never),
      rateLimited({ reason: 'queue-full', retryAfterMs: 120_000 }),
    );
    await scheduler.advance(60_000);
    await queued;
  });

  it('removes an aborted caller from the queue and lets the next one go', async () => {
    const { scheduler, limiter } = setup({
      tokensPerMinute: 600,
      mode: 'queue',
      maxQueueMs: 60_000,
    });
    await limiter.acquire(600, never);
    const controller = new AbortController();
    const large = limiter.acquire(500, controller.signal);
    let smallAt: number | undefined;
    const small = limiter.acquire(10, never).then(() => {
      smallAt = scheduler.now();
    });
    await scheduler.advance(500);
    controller.abort();
    await assert.rejects(large, coded('KEEL_ABORTED'));
    assert.equal(limiter.snapshot().queueLength, 1);
    await scheduler.advance(500);
    await small;
    assert.equal(smallAt, 1_000);
  });

  it('rejects a queued caller with KEEL_TIMEOUT when its deadline signal fires', async () => {
    const { limiter } = setup({ requestsPerMinute: 1, mode: 'queue', maxQueueMs: 120_000 });
    await limiter.acquire(0, never);
    const controller = new AbortController();
    const queued = limiter.acquire(0, controller.signal);
    controller.abort(new DOMException('deadline', 'TimeoutError'));
    await assert.rejects(queued, coded('KEEL_TIMEOUT'));
    await assert.rejects(limiter.acquire(0, AbortSignal.abort()), coded('KEEL_ABORTED'));
  });

  it('refunds unused tokens on settle, letting a queued caller go sooner', async () => {
    const { scheduler, limiter } = setup({ tokensPerMinute: 600, mode: 'queue' });
    const permit = await limiter.acquire(600, never);
    let grantedAt: number | undefined;
    const queued = limiter.acquire(300, never).then(() => {
      grantedAt = scheduler.now();
    });
    await scheduler.advance(100);
    permit.settle(100);
    await scheduler.advance(0);
    await queued;
    assert.equal(grantedAt, 100);
    assert.equal(limiter.snapshot().availableTokens, 201);
  });

  it('carries tokens used beyond the estimate as debt that delays later callers', async () => {
    const { limiter } = setup({ tokensPerMinute: 600, mode: 'refuse' });
    const permit = await limiter.acquire(100, never);
    permit.settle(1_100);
    permit.settle(0);
    assert.equal(limiter.snapshot().availableTokens, -500);
    await assert.rejects(limiter.acquire(100, never), rateLimited({ retryAfterMs: 60_000 }));
  });

  it('refuses the caller at the head when debt pushes its turn past maxQueueMs', async () => {
    const { limiter } = setup({ tokensPerMinute: 600, mode: 'queue', maxQueueMs: 30_000 });
    const permit = await limiter.acquire(600, never);
    const queued = limiter.acquire(100, never);
    permit.settle(1_000);
    await assert.rejects(queued, rateLimited({ reason: 'queue-wait', retryAfterMs: 50_000 }));
    assert.equal(limiter.snapshot().queueLength, 0);
  });

  it('rejects invalid options, token counts and settlements', async () => {
    const scheduler = new ManualScheduler();
    const invalid = coded('KEEL_INVALID_ARGUMENT');
    assert.throws(
      () => new RateLimiter({ requestsPerMinute: 0.5, mode: 'queue' }, scheduler),
      invalid,
    );
    assert.throws(
      () => new RateLimiter({ tokensPerMinute: -1, mode: 'queue' }, scheduler),
      invalid,
    );
    assert.throws(
      () => new RateLimiter({ mode: 'queue', maxQueueLength: 1.5 }, scheduler),
      invalid,
    );
    const limiter = new RateLimiter({ tokensPerMinute: 600, mode: 'refuse' }, scheduler);
    await assert.rejects(limiter.acquire(Number.NaN, never), invalid);
    const permit = await limiter.acquire(10, never);
    assert.throws(() => permit.settle(-1), invalid);
  });

  it('never grants more requests in a window of w ms than requestsPerMinute × (1 + w / 60 000)', async () => {
    const operation = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({ kind: fc.constant('acquire' as const), tokens: fc.nat(300) }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('settle' as const),
          pick: fc.nat(),
          actual: fc.nat(600),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('advance' as const),
          milliseconds: fc.nat(20_000),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          requestsPerMinute: fc.integer({ min: 1, max: 20 }),
          tokensPerMinute: fc.option(fc.integer({ min: 300, max: 3_000 }), { nil: undefined }),
          mode: fc.constantFrom('queue' as const, 'refuse' as const),
          maxQueueMs: fc.nat(120_000),
          maxQueueLength: fc.nat(10),
        }),
        fc.array(operation, { minLength: 10, maxLength: 80 }),
        async (configuration, operations) => {
          const { tokensPerMinute, ...rest } = configuration;
          const scheduler = new ManualScheduler();
          const limiter = new RateLimiter(
            tokensPerMinute === undefined ? rest : { ...rest, tokensPerMinute },
            scheduler,
          );
          const grants: Array<{ at: number; order: number }> = [];
          const permits: RateLimitPermit[] = [];
          const controllers: AbortController[] = [];
          const unexpected: unknown[] = [];
          let acquired = 0;
          for (const step of operations) {
            if (step.kind === 'acquire') {
              const controller = new AbortController();
              const order = acquired++;
              controllers.push(controller);
              limiter.acquire(step.tokens, controller.signal).then(
                (permit) => {
                  grants.push({ at: scheduler.now(), order });
                  permits.push(permit);
                },
                (error: unknown) => {
                  if (
                    !(
                      isKeelError(error) &&
                      ['KEEL_RATE_LIMITED', 'KEEL_ABORTED'].includes(error.code)
                    )
                  ) {
                    unexpected.push(error);
                  }
                },
              );
              await scheduler.advance(0);
            } else if (step.kind === 'settle' && permits.length > 0) {
              permits[step.pick % permits.length]?.settle(step.actual);
            } else if (step.kind === 'advance') {
              await scheduler.advance(step.milliseconds);
            } else if (step.kind === 'abort' && controllers.length > 0) {
              controllers[step.pick % controllers.length]?.abort();
            }
          }
          await scheduler.advance(120_000);
          for (const controller of controllers) controller.abort();
          await scheduler.advance(0);
          assert.deepEqual(unexpected, []);
          const { requestsPerMinute } = configuration;
          for (let first = 0; first < grants.length; first += 1) {
            for (let last = first; last < grants.length; last += 1) {
              const window = (grants[last]?.at ?? 0) - (grants[first]?.at ?? 0);
              const bound = requestsPerMinute * (1 + window / 60_000);
              assert.ok(
                last - first + 1 <= bound + 1e-9,
                `${last - first + 1} grants in ${window} ms`,
              );
            }
          }
          if (configuration.mode === 'queue') {
            const orders = grants.map((grant) => grant.order);
            assert.deepEqual(
              orders,
              [...orders].sort((left, right) => left - right),
              'first come, first served',
            );
          }
          assert.equal(limiter.snapshot().queueLength, 0);
        },
      ),
    );
  });
});
