import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../../test/support/assertions.ts';
import { chatOf, startRouterRig, waitUntil } from '../../../../test/support/model-router-rig.ts';
import { silentLogger } from '../../../../test/support/silent-logger.ts';

const logger = silentLogger();
const open = () => ({ signal: new AbortController().signal });

describe('ModelRouter rate limits', () => {
  it('refuses an agent over its requests per minute while another agent is unaffected', async (t) => {
    const rig = await startRouterRig({
      logger,
      agentLimit: { requestsPerMinute: 2, mode: 'refuse' },
    });
    t.after(() => rig.close());
    const as = (agentId: string) => ({ ...open(), agentId });

    await rig.router.chat('smart', chatOf('one'), as('agent-a'));
    await rig.router.chat('smart', chatOf('two'), as('agent-a'));
    const error = await rejectsWithCode(
      rig.router.chat('smart', chatOf('three'), as('agent-a')),
      'KEEL_RATE_LIMITED',
    );
    const answer = await rig.router.chat('smart', chatOf('other'), as('agent-b'));

    assert.equal((error as unknown as { retryAfterMs: number }).retryAfterMs, 30_000);
    assert.equal(answer.text, 'mock reply to: other');
    assert.equal(rig.mock('alpha').requests().length, 3);
    assert.equal(rig.mock('beta').requests().length, 0);
  });

  it('queues an agent over its limit until the limiter admits it', async (t) => {
    const rig = await startRouterRig({
      logger,
      agentLimit: { requestsPerMinute: 1, mode: 'queue', maxQueueMs: 60_000 },
    });
    t.after(() => rig.close());
    await rig.router.chat('smart', chatOf('one'), { ...open(), agentId: 'agent-a' });

    let settled = false;
    const queued = rig.router
      .chat('smart', chatOf('two'), { ...open(), agentId: 'agent-a' })
      .finally(() => {
        settled = true;
      });
    await waitUntil(() => rig.scheduler.pendingSleeps === 1, 'the second call is queued');
    await rig.scheduler.advance(59_999);
    assert.equal(settled, false);
    assert.equal(rig.mock('alpha').requests().length, 1);
    await rig.scheduler.advance(1);
    const answer = await queued;

    assert.equal(answer.text, 'mock reply to: two');
    assert.deepEqual(rig.scheduler.sleeps, [60_000]);
    assert.equal(rig.mock('alpha').requests().length, 2);
  });

  it('fails over to the next provider when a provider limit refuses', async (t) => {
    const rig = await startRouterRig({
      logger,
      retry: { maxAttempts: 2, maxRetryAfterMs: 10_000 },
      providerLimits: new Map([['alpha', { requestsPerMinute: 1, mode: 'refuse' as const }]]),
    });
    t.after(() => rig.close());

    const first = await rig.router.chat('smart', chatOf('one'), open());
    const second = await rig.router.chat('smart', chatOf('two'), open());

    assert.deepEqual(first.target, { provider: 'alpha', model: 'mock-small' });
    assert.deepEqual(second.attempts, [
      { provider: 'alpha', model: 'mock-small', outcome: 'KEEL_RATE_LIMITED' },
      { provider: 'beta', model: 'mock-small', outcome: 'ok' },
    ]);
    assert.deepEqual(rig.scheduler.sleeps, []);
    assert.equal(rig.mock('alpha').requests().length, 1);
    // A local refusal says nothing about the provider's health.
    assert.equal(rig.router.breakers().get('alpha')?.snapshot().consecutiveFailures, 0);
  });
});
