import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  assertCanonicalJson,
  CanonicalJsonError,
  canonicalCopy,
  canonicalJson,
} from './canonical-json.ts';

/**
 * A slow, obviously correct reference. (Rebuilding objects would not do: JavaScript puts
 * integer-like keys first whatever the insertion order.)
 */
function reference(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const members = Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${reference(record[key])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('canonicalJson', () => {
  it('equals sorted-key JSON for every JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => assert.equal(canonicalJson(value), reference(value))),
    );
  });

  it('is stable across a parse round trip', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        assert.equal(canonicalJson(JSON.parse(text)), text);
      }),
    );
  });

  it('orders keys and drops undefined members', () => {
    assert.equal(
      canonicalJson({ b: 1, a: [true, undefined, null], c: undefined }),
      '{"a":[true,null,null],"b":1}',
    );
    assert.equal(canonicalJson({ when: new Date(0) }), '{"when":"1970-01-01T00:00:00.000Z"}');
  });

  it('orders integer-like keys as text, as the reference does, though engines list them first', () => {
    const value = { b: 1, '10': 2, '9': 3, a: { '2': true, '11': false } };
    assert.equal(canonicalJson(value), reference(value));
    assert.equal(canonicalJson(value), '{"10":2,"9":3,"a":{"11":false,"2":true},"b":1}');
  });

  it('keeps a __proto__ key as a key, also in an object without a prototype', () => {
    const parsed = JSON.parse('{"z":1,"__proto__":{"x":[1]}}') as unknown;
    assert.equal(canonicalJson(parsed), '{"__proto__":{"x":[1]},"z":1}');
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 2, a: 1 });
    assert.equal(canonicalJson(bare), '{"a":1,"b":2}');
  });

  it('reads each member once', () => {
    let reads = 0;
    const value = {
      get flaky(): unknown {
        reads += 1;
        return reads === 1 ? 1 : Number.NaN;
      },
    };
    assert.equal(canonicalJson(value), '{"flaky":1}');
    assert.equal(reads, 1);
    // Also when integer-like keys make the text be assembled by hand.
    reads = 0;
    const reordered = { '10': 1, '9': 2, ...value };
    reads = 0;
    Object.defineProperty(reordered, 'flaky', {
      enumerable: true,
      get: () => {
        reads += 1;
        return reads === 1 ? 1 : Number.NaN;
      },
    });
    assert.equal(canonicalJson(reordered), '{"10":1,"9":2,"flaky":1}');
    assert.equal(reads, 1);
  });

  it('gives a copy that is plain JSON data, -0 included', () => {
    const { text, copy } = canonicalCopy({
      z: -0,
      list: [new Date(0), undefined],
      gone: undefined,
    });
    assert.equal(text, '{"list":["1970-01-01T00:00:00.000Z",null],"z":0}');
    assert.deepEqual(copy, JSON.parse(text));
    assert.ok(Object.is((copy as { z: number }).z, 0));
  });

  it('is checked without building the text, with the same refusals', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withDate: true,
          withMap: true,
          withSet: true,
          withBigInt: true,
          withNullPrototype: true,
          withSparseArray: true,
          withBoxedValues: true,
        }),
        (value) => {
          let expected: unknown;
          try {
            canonicalJson(value);
          } catch (error) {
            expected = error;
          }
          // The same refusal class; with several bad members, which is met first may differ
          // (canonicalJson walks keys sorted, the check as they are).
          if (expected === undefined) assert.doesNotThrow(() => assertCanonicalJson(value));
          else assert.throws(() => assertCanonicalJson(value), CanonicalJsonError);
        },
      ),
    );
    const deep: unknown[] = [];
    let inner = deep;
    for (let depth = 0; depth < 300; depth += 1) {
      const next: unknown[] = [];
      inner.push(next);
      inner = next;
    }
    assert.throws(() => assertCanonicalJson(deep), /nested too deeply/);
    assert.throws(
      () => assertCanonicalJson({ ' ': [new Map()], '': new Set() }),
      CanonicalJsonError,
    );
    // An invalid Date has no ISO text: both refuse it.
    assert.throws(() => canonicalJson({ at: new Date(Number.NaN) }), /invalid Date/);
    assert.throws(() => assertCanonicalJson({ at: new Date(Number.NaN) }), /invalid Date/);
    assert.doesNotThrow(() => assertCanonicalJson({ a: undefined, b: [undefined, new Date(0)] }));
  });

  it('refuses what JSON cannot represent faithfully', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const value of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      1n,
      () => 1,
      Symbol('s'),
      new Map(),
      new Set([1]),
      Buffer.from('x'),
      cyclic,
    ]) {
      assert.throws(() => canonicalJson({ value }), TypeError);
      assert.throws(() => assertCanonicalJson({ value }), TypeError);
    }
  });
});
