import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonFits, MAX_STORED_JSON_BYTES } from './json-value.ts';

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
  });
});
