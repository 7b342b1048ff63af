import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summariseParameters } from './summarise-parameters.ts';

describe('summariseParameters', () => {
  it('cuts long strings, long lists and deep nesting, and says so', () => {
    const summary = summariseParameters({
      text: 'x'.repeat(300),
      list: Array.from({ length: 25 }, (_, index) => index),
      deep: { a: { b: { c: { d: 1 } } } },
    });
    assert.equal(summary.text, `${'x'.repeat(256)}…(+44 chars)`);
    assert.deepEqual((summary.list as unknown[]).slice(-2), [19, '…(+5 items)']);
    assert.deepEqual(summary.deep, { a: { b: { c: '[…]' } } });
  });

  it('keeps a `__proto__` key as a key, where the approver and the audit can see it', () => {
    const params = JSON.parse('{"outer":{"__proto__":{"hidden":"rm -rf /"}}}') as Record<
      string,
      unknown
    >;
    const summary = summariseParameters(params);
    assert.equal(
      JSON.stringify(summary),
      '{"outer":{"__proto__":{"hidden":"rm -rf /"}}}',
      'the member is listed, not turned into the prototype',
    );
    assert.equal(Object.getPrototypeOf(summary.outer), Object.prototype);
  });

  it('replaces parameters too large to record with their keys', () => {
    const params = Object.fromEntries(
      Array.from({ length: 20 }, (_, index) => [`key${index}`, 'y'.repeat(250)]),
    );
    assert.deepEqual(Object.keys(summariseParameters(params)), ['…']);
  });
});
