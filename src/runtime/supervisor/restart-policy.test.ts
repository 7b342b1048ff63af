import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RestartPolicy } from './restart-policy.ts';

const defaults = { initialDelayMs: 200, maxDelayMs: 30_000, budget: 10, windowMs: 60_000 };

/**
 * A worker that crashes `ranMs` after each start (or never starts), restarted after each
 * delay the policy gives: the delays, until the policy gives up or `limit` crashes.
 */
function crashLoop(policy: RestartPolicy, ranMs: number | 'never', limit = 1_000): number[] {
  const delays: number[] = [];
  let now = 0;
  for (let crash = 0; crash < limit; crash += 1) {
    if (ranMs !== 'never') {
      policy.started(now);
      now += ranMs;
    }
    const decision = policy.next(now);
    if (!decision.restart) return delays;
    delays.push(decision.delayMs);
    now += decision.delayMs;
  }
  return delays;
}

describe('RestartPolicy', () => {
  it('gives up after the budget of crashes in a row, however far apart the backoff spreads them', () => {
    const delays = crashLoop(new RestartPolicy(defaults), 1_000);
    assert.equal(delays.length, 10);
    assert.deepEqual(delays, [200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000]);
  });

  it('gives up on a worker that never gets as far as starting', () => {
    assert.equal(crashLoop(new RestartPolicy(defaults), 'never').length, 10);
  });

  it('forgives the crash of a worker that ran for a whole window, and starts the backoff again', () => {
    const policy = new RestartPolicy({ ...defaults, budget: 3 });
    // Two quick crashes, then a worker that runs a whole window before it crashes.
    assert.deepEqual(crashLoop(policy, 10, 2), [200, 400]);
    policy.started(100_000);
    assert.deepEqual(policy.next(160_000), { restart: true, delayMs: 200 });
    // A long-running worker crashing now and then is always restarted.
    assert.equal(crashLoop(new RestartPolicy({ ...defaults, budget: 3 }), 60_000, 50).length, 50);
  });

  it('does not forgive a crash for a start before the previous crash', () => {
    const policy = new RestartPolicy({ ...defaults, budget: 2 });
    policy.started(0);
    assert.equal(policy.next(1_000).restart, true);
    // The restart failed before the worker was ready, long after the last start.
    assert.equal(policy.next(500_000).restart, true);
    assert.equal(policy.next(900_000).restart, false);
  });

  it('starts afresh when an operator restarts the agent', () => {
    const policy = new RestartPolicy({ ...defaults, budget: 1 });
    assert.equal(policy.next(0).restart, true);
    assert.equal(policy.next(1).restart, false);
    policy.reset();
    assert.deepEqual(policy.next(2), { restart: true, delayMs: 200 });
  });
});
