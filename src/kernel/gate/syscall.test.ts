import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import { parseIntent } from './syscall.ts';

const invalid = (error: unknown): boolean =>
  isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT';

describe('parseIntent', () => {
  it('digests the canonical form, whatever the key order', () => {
    const one = parseIntent({ kind: 'log', params: { b: 1, a: { y: [1, 2], x: null } } }, 4096);
    const two = parseIntent({ params: { a: { x: null, y: [1, 2] }, b: 1 }, kind: 'log' }, 4096);
    assert.equal(one.canonical, two.canonical);
    assert.equal(one.digest, two.digest);
    assert.equal(
      one.canonical,
      '{"kind":"log","params":{"a":{"x":null,"y":[1,2]},"b":1},"resource":""}',
    );
  });

  it('keeps a detached plain-JSON copy of the params', () => {
    const params = { list: [{ at: new Date(0) }], gone: undefined, '10': 'ten', '9': 'nine' };
    const { intent, canonical } = parseIntent({ kind: 'log', params }, 4096);
    params.list.push({ at: new Date(1) });
    assert.deepEqual(intent.params, {
      list: [{ at: '1970-01-01T00:00:00.000Z' }],
      '10': 'ten',
      '9': 'nine',
    });
    assert.equal(Object.hasOwn(intent.params, 'gone'), false);
    assert.deepEqual(JSON.parse(canonical).params, intent.params);
    assert.ok(Object.isFrozen(intent) && Object.isFrozen(intent.params));
    assert.equal(canonicalJson({ kind: 'log', resource: '', params: intent.params }), canonical);
  });

  it('refuses lone surrogates anywhere, and accepts text that merely looks like an escape', () => {
    for (const params of [
      { deep: [{ text: 'a\udbffb' }] },
      { 'key\udc00': 1 },
      { text: '\\\ud800' },
    ]) {
      assert.throws(() => parseIntent({ kind: 'log', params }, 4096), invalid);
    }
    assert.throws(() => parseIntent({ kind: 'log', resource: '\ud800' }, 4096), invalid);
    let deep: unknown = ['x\ud800'];
    for (let level = 0; level < 100; level += 1) deep = [deep];
    assert.throws(() => parseIntent({ kind: 'log', params: { deep } }, 4096), invalid);
    const decoy = parseIntent({ kind: 'log', params: { text: '\\ud800 and 😀' } }, 4096);
    assert.equal(decoy.intent.params.text, '\\ud800 and 😀');
  });

  it('refuses values that are not plain JSON, and oversize intents', () => {
    for (const params of [{ n: Number.NaN }, { f: () => 1 }, { m: new Map() }, { b: 1n }]) {
      assert.throws(() => parseIntent({ kind: 'log', params }, 4096), invalid);
    }
    assert.throws(
      () => parseIntent({ kind: 'log', params: { text: 'é'.repeat(3000) } }, 4096),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_PAYLOAD_TOO_LARGE',
    );
  });
});
