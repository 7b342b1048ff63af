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

  it('does not keep a value loaded while the entry was deleted', async () => {
    const cache = new ExpiringCache<string, string>(1_000, () => 0);
    let release: (value: string) => void = () => undefined;
    const slow = cache.get('agent', () => new Promise<string>((resolve) => (release = resolve)));
    cache.delete('agent'); // the owner changed the agent while the read was in flight
    release('stale');
    assert.equal(await slow, 'stale');
    assert.equal(await cache.get('agent', async () => 'fresh'), 'fresh');
  });

  it('keeps a value its owner sets, over a load that overlapped it', async () => {
    let now = 0;
    const cache = new ExpiringCache<string, string>(100, () => now);
    let release: (value: string) => void = () => undefined;
    const slow = cache.get('run', () => new Promise<string>((resolve) => (release = resolve)));
    cache.set('run', 'written');
    release('read before the write');
    assert.equal(await slow, 'read before the write');
    assert.equal(await cache.get('run', async () => 'loaded'), 'written');
    now = 100;
    assert.equal(await cache.get('run', async () => 'loaded'), 'loaded', 'a set value expires too');
  });
});
