import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import {
  type CallOutcome,
  CircuitBreaker,
  type CircuitPermit,
  type CircuitState,
} from './circuit-breaker.ts';
import { ManualScheduler } from './manual-scheduler.ts';

function setup(failureThreshold = 3, cooldownMs = 1_000) {
  const scheduler = new ManualScheduler();
  const breaker = new CircuitBreaker({ failureThreshold, cooldownMs, scheduler });
  return { scheduler, breaker };
}

function acquire(breaker: CircuitBreaker): CircuitPermit {
  const admission = breaker.tryAcquire();
  assert.ok(admission.permitted, 'expected a permit');
  return admission.permit;
}

function fail(breaker: CircuitBreaker, times: number): void {
  for (let index = 0; index < times; index += 1) acquire(breaker).release('failure');
}

describe('CircuitBreaker', () => {
  it('opens after failureThreshold consecutive failures and refuses until the cooldown ends', async () => {
    const { scheduler, breaker } = setup(3, 1_000);
    fail(breaker, 2);
    assert.equal(breaker.state, 'closed');
    fail(breaker, 1);
    assert.equal(breaker.state, 'open');
    await scheduler.advance(400);
    assert.deepEqual(breaker.tryAcquire(), { permitted: false, state: 'open', retryAfterMs: 600 });
    assert.deepEqual(breaker.snapshot(), {
      state: 'open',
      consecutiveFailures: 3,
      openedAt: 0,
      nextProbeAt: 1_000,
      probeInFlight: false,
    });
  });

  it('resets the failure count on a success and ignores neutral outcomes', () => {
    const { breaker } = setup(3);
    fail(breaker, 2);
    acquire(breaker).release('neutral');
    assert.equal(breaker.snapshot().consecutiveFailures, 2);
    acquire(breaker).release('success');
    assert.equal(breaker.snapshot().consecutiveFailures, 0);
    fail(breaker, 2);
    assert.equal(breaker.state, 'closed');
  });

  it('admits one probe after the cooldown and closes on its success', async () => {
    const { scheduler, breaker } = setup(1, 1_000);
    fail(breaker, 1);
    await scheduler.advance(1_000);
    const probe = acquire(breaker);
    assert.equal(probe.probe, true);
    assert.equal(breaker.state, 'half-open');
    const refused = breaker.tryAcquire();
    assert.ok(!refused.permitted);
    assert.equal(refused.state, 'half-open');
    probe.release('success');
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.snapshot().consecutiveFailures, 0);
    assert.equal(acquire(breaker).probe, false);
  });

  it('re-opens with a new cooldown when the probe fails', async () => {
    const { scheduler, breaker } = setup(1, 1_000);
    fail(breaker, 1);
    await scheduler.advance(1_500);
    acquire(breaker).release('failure');
    assert.deepEqual(breaker.snapshot(), {
      state: 'open',
      consecutiveFailures: 2,
      openedAt: 1_500,
      nextProbeAt: 2_500,
      probeInFlight: false,
    });
    await scheduler.advance(999);
    assert.equal(breaker.tryAcquire().permitted, false);
    await scheduler.advance(1);
    assert.equal(breaker.tryAcquire().permitted, true);
  });

  it('frees the probe slot on a neutral probe without closing or re-opening', async () => {
    const { scheduler, breaker } = setup(1, 1_000);
    fail(breaker, 1);
    await scheduler.advance(1_000);
    acquire(breaker).release('neutral');
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.snapshot().probeInFlight, false);
    assert.equal(acquire(breaker).probe, true);
  });

  it('treats a second release of the same permit as a no-op', async () => {
    const { scheduler, breaker } = setup(2, 1_000);
    const permit = acquire(breaker);
    permit.release('failure');
    permit.release('failure');
    assert.equal(breaker.state, 'closed');
    fail(breaker, 1);
    await scheduler.advance(1_000);
    const probe = acquire(breaker);
    probe.release('success');
    probe.release('failure');
    assert.equal(breaker.state, 'closed');
  });

  it('ignores the outcome of a call that started before the breaker changed state', async () => {
    const { scheduler, breaker } = setup(1, 1_000);
    const slow = acquire(breaker);
    fail(breaker, 1);
    await scheduler.advance(1_000);
    const probe = acquire(breaker);
    slow.release('failure');
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.snapshot().probeInFlight, true);
    probe.release('success');
    assert.equal(breaker.state, 'closed');
  });

  it('releases a disposed permit as neutral', async () => {
    const { scheduler, breaker } = setup(1, 1_000);
    fail(breaker, 1);
    await scheduler.advance(1_000);
    {
      using _probe = acquire(breaker);
      assert.equal(breaker.snapshot().probeInFlight, true);
    }
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.snapshot().probeInFlight, false);
  });

  it('opens on failed health checks only at the threshold, sharing the count with calls', () => {
    const { breaker } = setup(3);
    breaker.recordHealthCheck(false);
    acquire(breaker).release('failure');
    assert.equal(breaker.state, 'closed');
    breaker.recordHealthCheck(true);
    assert.equal(breaker.snapshot().consecutiveFailures, 0);
    breaker.recordHealthCheck(false);
    breaker.recordHealthCheck(false);
    assert.equal(breaker.state, 'closed');
    acquire(breaker).release('failure');
    assert.equal(breaker.state, 'open');
  });

  it('moves an open breaker to half-open early on a passing health check', () => {
    const { breaker } = setup(1, 60_000);
    fail(breaker, 1);
    breaker.recordHealthCheck(false);
    assert.equal(breaker.state, 'open');
    breaker.recordHealthCheck(true);
    assert.equal(breaker.state, 'half-open');
    assert.equal(acquire(breaker).probe, true);
  });

  it('tells listeners every transition until they unsubscribe', async () => {
    const { scheduler, breaker } = setup(1, 1_000);
    const seen: Array<[CircuitState, CircuitState]> = [];
    const unsubscribe = breaker.onTransition((from, to) => seen.push([from, to]));
    fail(breaker, 1);
    await scheduler.advance(1_000);
    acquire(breaker).release('success');
    unsubscribe();
    fail(breaker, 1);
    assert.deepEqual(seen, [
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
  });

  it('reports a throwing listener to onListenerError and keeps working', () => {
    const scheduler = new ManualScheduler();
    const reported: unknown[] = [];
    const breaker = new CircuitBreaker({
      failureThreshold: 1,
      scheduler,
      onListenerError: (error) => reported.push(error),
    });
    const seen: CircuitState[] = [];
    const boom = new Error('listener bug');
    breaker.onTransition(() => {
      throw boom;
    });
    breaker.onTransition((_from, to) => seen.push(to));
    fail(breaker, 1);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(seen, ['open']);
    assert.deepEqual(reported, [boom]);
  });

  it('rejects invalid options and outcomes', () => {
    const scheduler = new ManualScheduler();
    const invalid = (error: unknown) =>
      isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT';
    assert.throws(() => new CircuitBreaker({ failureThreshold: 0, scheduler }), invalid);
    assert.throws(() => new CircuitBreaker({ cooldownMs: -1, scheduler }), invalid);
    const permit = acquire(new CircuitBreaker({ scheduler }));
    assert.throws(() => permit.release('maybe' as CallOutcome), invalid);
  });

  it('never admits two concurrent half-open probes, whatever happens', async () => {
    const operation = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('acquire' as const) }) },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('release' as const),
          pick: fc.nat(),
          outcome: fc.constantFrom<CallOutcome>('success', 'failure', 'neutral'),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('advance' as const),
          milliseconds: fc.nat(2_000),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('health' as const), ok: fc.boolean() }),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(operation, { minLength: 10, maxLength: 100 }),
        async (failureThreshold, operations) => {
          const scheduler = new ManualScheduler();
          const breaker = new CircuitBreaker({ failureThreshold, cooldownMs: 1_000, scheduler });
          const outstanding: CircuitPermit[] = [];
          const probes = new Set<CircuitPermit>();
          for (const step of operations) {
            if (step.kind === 'acquire') {
              const admission = breaker.tryAcquire();
              if (admission.permitted) {
                outstanding.push(admission.permit);
                if (breaker.state === 'half-open') {
                  assert.equal(admission.permit.probe, true);
                  probes.add(admission.permit);
                }
              }
            } else if (step.kind === 'release' && outstanding.length > 0) {
              const [permit] = outstanding.splice(step.pick % outstanding.length, 1);
              permit?.release(step.outcome);
              if (permit !== undefined) probes.delete(permit);
            } else if (step.kind === 'advance') {
              await scheduler.advance(step.milliseconds);
            } else if (step.kind === 'health') {
              breaker.recordHealthCheck(step.ok);
            }
            assert.ok(probes.size <= 1, 'two probes in flight');
            const snapshot = breaker.snapshot();
            assert.equal(
              snapshot.probeInFlight,
              snapshot.state === 'half-open' && probes.size === 1,
            );
          }
        },
      ),
    );
  });
});
