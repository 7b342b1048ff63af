import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiringCache } from './expiring-cache.ts';

describe('ExpiringCache', () => {
  it('serves an entry until it expires or is deleted, and stays bounded', async () => {
    let now = 0;
    let loads = 0;
    const cache = new ExpiringCache<string, number>(100, () => now, 2);
    const load = async () => {
      loads += 1;
      return loads;
    };
    assert.equal(await cache.get('a', load), 1);
    assert.equal(await cache.get('a', load), 1);
    now = 100;
    assert.equal(await cache.get('a', load), 2, 'expired');
    cache.delete('a');
    assert.equal(await cache.get('a', load), 3, 'deleted');
    await cache.get('b', load);
    await cache.get('c', load);
    assert.equal(await cache.get('a', load), 6, 'cleared when full');
  });
});
