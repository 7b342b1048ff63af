import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseRetryAfter } from './retry-after.ts';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const DAY_MS = 24 * 60 * 60 * 1000;

function parse(headers: Record<string, string>, nowMs = NOW): number | undefined {
  return parseRetryAfter(new Headers(headers), nowMs);
}

describe('parseRetryAfter', () => {
  it('returns undefined without either header', () => {
    assert.equal(parse({}), undefined);
  });

  it('prefers retry-after-ms over retry-after', () => {
    assert.equal(parse({ 'retry-after-ms': '250', 'retry-after': '30' }), 250);
  });

  it('rounds a fractional retry-after-ms up', () => {
    assert.equal(parse({ 'retry-after-ms': '12.3' }), 13);
  });

  it('falls back to retry-after when retry-after-ms is garbage', () => {
    assert.equal(parse({ 'retry-after-ms': 'soon', 'retry-after': '2' }), 2000);
  });

  it('reads retry-after as integer delta-seconds', () => {
    assert.equal(parse({ 'retry-after': '0' }), 0);
    assert.equal(parse({ 'retry-after': '120' }), 120_000);
  });

  it('reads retry-after as decimal delta-seconds', () => {
    assert.equal(parse({ 'retry-after': '1.5' }), 1500);
    assert.equal(parse({ 'retry-after': '0.0001' }), 1);
  });

  it('reads retry-after as an IMF-fixdate', () => {
    assert.equal(parse({ 'retry-after': 'Sun, 01 Jun 2025 12:00:30 GMT' }), 30_000);
  });

  it('reads retry-after in the obsolete RFC 850 and asctime date forms', () => {
    assert.equal(parse({ 'retry-after': 'Sunday, 01-Jun-25 12:01:00 GMT' }), 60_000);
    assert.equal(parse({ 'retry-after': 'Sun Jun  1 12:00:05 2025' }), 5000);
    assert.equal(parse({ 'retry-after': 'Mon Jun  2 11:00:00 2025' }), 23 * 60 * 60 * 1000);
  });

  it('reads a two-digit year more than 50 years ahead as the previous century', () => {
    assert.equal(parse({ 'retry-after': 'Sunday, 06-Nov-94 08:49:37 GMT' }), 0);
    assert.equal(parse({ 'retry-after': 'Monday, 01-Jan-76 00:00:00 GMT' }), 0);
    assert.equal(parse({ 'retry-after': 'Friday, 01-Jan-75 00:00:00 GMT' }), DAY_MS);
  });

  it('floors a date in the past at zero', () => {
    assert.equal(parse({ 'retry-after': 'Sun, 06 Nov 1994 08:49:37 GMT' }), 0);
  });

  it('caps the wait at 24 hours', () => {
    assert.equal(parse({ 'retry-after': '604800' }), DAY_MS);
    assert.equal(parse({ 'retry-after-ms': '9'.repeat(400) }), DAY_MS);
    assert.equal(parse({ 'retry-after': 'Fri, 01 Jan 2100 00:00:00 GMT' }), DAY_MS);
  });

  it('treats garbage as absent', () => {
    const garbage = [
      '',
      'soon',
      '-1',
      '+5',
      '1e3',
      '0x10',
      '1.',
      '.5',
      '1, 2',
      'Infinity',
      'Sun, 01 Jun 2025 12:00:30 PST',
      'Sun, 31 Feb 2025 12:00:30 GMT',
      'Sun, 01 Jun 2025 25:00:30 GMT',
      'Someday, 01 Jun 2025 12:00:30 GMT',
      '2025-06-01T12:00:30Z',
      '1 Jun 2025',
    ];
    for (const value of garbage) {
      assert.equal(parse({ 'retry-after': value }), undefined, `for ${JSON.stringify(value)}`);
      assert.equal(
        parse({ 'retry-after-ms': value }),
        undefined,
        `for ms ${JSON.stringify(value)}`,
      );
    }
  });

  it('returns whole milliseconds between zero and 24 hours for any header values', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.integer({ min: 0, max: 4e12 }), (ms, after, now) => {
        const headers = new Headers();
        // Headers refuses some characters; skipping those values keeps the property total.
        const safe = (value: string) => /^[\x20-\x7e]*$/.test(value);
        if (safe(ms)) headers.set('retry-after-ms', ms);
        if (safe(after)) headers.set('retry-after', after);
        const result = parseRetryAfter(headers, now);
        if (result !== undefined) {
          assert.ok(Number.isInteger(result) && result >= 0 && result <= DAY_MS);
        }
      }),
    );
  });

  it('converts any non-negative integer of seconds to milliseconds, capped', () => {
    fc.assert(
      fc.property(fc.nat(), (seconds) => {
        assert.equal(parse({ 'retry-after': String(seconds) }), Math.min(seconds * 1000, DAY_MS));
      }),
    );
  });
});
