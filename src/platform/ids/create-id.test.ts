import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createId } from './create-id.ts';

describe('createId', () => {
  it('makes a UUIDv7 after the prefix: the time first, then version 7 and the RFC variant', () => {
    const id = createId('run', 0x0193f1c2a4b0);
    assert.match(id, /^run_0193f1c2a4b07[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  });

  it('sorts by creation time and never repeats', () => {
    const ids = Array.from({ length: 10_000 }, (_, index) =>
      createId('evt', 1_700_000_000_000 + index),
    );
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    const sameMillisecond = Array.from({ length: 10_000 }, () => createId('evt', 42));
    assert.equal(new Set(sameMillisecond).size, sameMillisecond.length);
  });
});
