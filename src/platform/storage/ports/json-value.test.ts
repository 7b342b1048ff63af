import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeelError } from '../../errors/keel-error.ts';
import { jsonFits, MAX_STORED_JSON_BYTES, nestedWithin, storableError } from './json-value.ts';

describe('jsonFits', () => {
  it('measures the UTF-8 bytes of the JSON text, exactly at the limit', () => {
    const limit = 1_000;
    // Two quotes and the characters: 1,000 bytes, then one more.
    assert.equal(jsonFits('a'.repeat(limit - 2), limit), true);
    assert.equal(jsonFits('a'.repeat(limit - 1), limit), false);
    // "é" is two bytes in UTF-8, a control character six once escaped.
    assert.equal(jsonFits('é'.repeat(499), limit), true);
    assert.equal(jsonFits('é'.repeat(500), limit), false);
    assert.equal(jsonFits('\u0001'.repeat(166), limit), true);
    assert.equal(jsonFits('\u0001'.repeat(167), limit), false);
  });

  it('counts nested values, keys and dates', () => {
    const nested = {
      list: Array.from({ length: 100 }, (_, index) => ({ index, at: new Date(0) })),
    };
    const bytes = Buffer.byteLength(JSON.stringify(nested));
    assert.equal(jsonFits(nested, bytes), true);
    assert.equal(jsonFits(nested, bytes - 1), false);
    assert.equal(jsonFits({ ok: true, step: 3 }, MAX_STORED_JSON_BYTES), true);
    assert.equal(jsonFits(null, 4), true);
    // 25 characters a number: 40,330 of them and their commas are 1,048,581 bytes.
    const numbers = Array.from({ length: 40_330 }, () => -0.0000012345678901234567);
    assert.equal(jsonFits(numbers, MAX_STORED_JSON_BYTES), false);
  });

  it('keeps an error that fits as it is, and cuts one that does not, its code kept', () => {
    const small = new KeelError('KEEL_EXECUTOR_FAILED', 'boom', { details: { reason: 'x' } });
    assert.equal(storableError(small), small);
    const large = new KeelError('KEEL_RUN_CANCELLED', 'm'.repeat(MAX_STORED_JSON_BYTES), {
      details: { blob: 'd'.repeat(MAX_STORED_JSON_BYTES) },
      hint: 'h'.repeat(MAX_STORED_JSON_BYTES),
      retryable: true,
      retryAfterMs: 500,
    });
    const cut = storableError(large);
    assert.deepEqual(
      [cut.code, cut.retryable, cut.retryAfterMs, cut.details],
      ['KEEL_RUN_CANCELLED', true, 500, {}],
    );
    assert.match(cut.message, /^m{4096}… \(cut: the error was larger than/);
    assert.equal(cut.hint.length, 1024);
    assert.equal(jsonFits(cut.toJSON(), MAX_STORED_JSON_BYTES), true);
  });
});

describe('nestedWithin', () => {
  const nest = (levels: number): unknown => {
    let value: unknown = 'core';
    for (let level = 0; level < levels; level += 1)
      value = level % 2 === 0 ? [value] : { a: value };
    return value;
  };

  it('counts the levels of objects and lists, exactly at the limit', () => {
    assert.equal(nestedWithin(nest(3), 3), true);
    assert.equal(nestedWithin(nest(4), 3), false);
    assert.equal(nestedWithin('text', 0), true);
    assert.equal(nestedWithin({}, 0), false);
    assert.equal(nestedWithin({ wide: Array.from({ length: 1000 }, () => ({})) }, 3), true);
    assert.equal(nestedWithin({ wide: Array.from({ length: 1000 }, () => ({})) }, 2), false);
  });

  it('answers for nesting far deeper than the stack would take', () => {
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`) as unknown;
    assert.equal(nestedWithin(deep, 128), false);
  });
});
