import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { backoffDelay } from './backoff-delay.ts';

const policy = { baseDelayMs: 100, maxDelayMs: 10_000 };
const policies = fc.record({
  baseDelayMs: fc.double({ min: 0, max: 1e12, noNaN: true }),
  maxDelayMs: fc.double({ min: 0, max: 1e12, noNaN: true }),
});
const attempts = fc.oneof(fc.nat(64), fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER));
const randoms = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe('backoffDelay', () => {
  it('scales random() over a ceiling that doubles per attempt up to maxDelayMs', () => {
    assert.equal(
      backoffDelay(0, policy, () => 0.5),
      50,
    );
    assert.equal(
      backoffDelay(3, policy, () => 0.5),
      400,
    );
    assert.equal(
      backoffDelay(10, policy, () => 0.5),
      5_000,
    );
    assert.equal(
      backoffDelay(0, policy, () => 0),
      0,
    );
  });

  it('waits at least as long as the server asked, even above maxDelayMs', () => {
    assert.equal(
      backoffDelay(0, policy, () => 0.5, 2_000),
      2_000,
    );
    assert.equal(
      backoffDelay(10, policy, () => 0.5, 1_000),
      5_000,
    );
    assert.equal(
      backoffDelay(0, policy, () => 0.5, 60_000),
      60_000,
    );
  });

  it('stays within [0, maxDelayMs] and is never NaN, for any attempt', () => {
    fc.assert(
      fc.property(attempts, policies, randoms, (attempt, anyPolicy, fraction) => {
        const delay = backoffDelay(attempt, anyPolicy, () => fraction);
        assert.ok(!Number.isNaN(delay));
        assert.ok(delay >= 0 && delay <= anyPolicy.maxDelayMs, `${delay}`);
      }),
    );
  });

  it('is never below retryAfterMs when the server gave one', () => {
    fc.assert(
      fc.property(
        attempts,
        policies,
        randoms,
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        (attempt, anyPolicy, fraction, retryAfterMs) => {
          const delay = backoffDelay(attempt, anyPolicy, () => fraction, retryAfterMs);
          assert.ok(!Number.isNaN(delay));
          assert.ok(delay >= retryAfterMs);
          assert.ok(delay <= Math.max(retryAfterMs, anyPolicy.maxDelayMs));
        },
      ),
    );
  });

  it('rejects a negative attempt, a bad policy and a random() outside [0, 1]', () => {
    const invalid = (error: unknown) =>
      isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT';
    assert.throws(() => backoffDelay(-1, policy, () => 0.5), invalid);
    assert.throws(() => backoffDelay(1.5, policy, () => 0.5), invalid);
    assert.throws(
      () => backoffDelay(0, { baseDelayMs: Number.NaN, maxDelayMs: 1 }, () => 0.5),
      invalid,
    );
    assert.throws(() => backoffDelay(0, policy, () => 2), invalid);
    assert.throws(() => backoffDelay(0, policy, () => 0.5, Number.NaN), invalid);
  });
});
