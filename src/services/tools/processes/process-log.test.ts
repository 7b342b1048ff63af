import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProcessLog } from './process-log.ts';

describe('ProcessLog', () => {
  it('keeps the newest bytes at absolute offsets, whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 30 }),
        fc.nat({ max: 4000 }),
        fc.integer({ min: 1, max: 200 }),
        (capacity, chunks, offset, limit) => {
          const log = new ProcessLog(capacity);
          for (const chunk of chunks) log.append(Buffer.from(chunk));
          const all = Buffer.concat(chunks.map((chunk) => Buffer.from(chunk)));
          const start = Math.max(0, all.length - capacity);
          assert.equal(log.total, all.length);
          assert.equal(log.start, start);
          const page = log.read(offset, limit);
          const from = Math.min(Math.max(offset, start), all.length);
          const to = Math.min(from + limit, all.length);
          assert.equal(page.offset, from);
          assert.equal(page.nextOffset, to);
          assert.equal(page.dropped, Math.max(0, start - offset));
          assert.equal(page.text, all.subarray(from, to).toString('utf8'));
          assert.deepEqual(log.tail(limit), all.subarray(Math.max(start, all.length - limit)));
        },
      ),
    );
  });

  it('refuses a capacity that is not a positive whole number', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new ProcessLog(capacity), RangeError);
    }
  });
});
