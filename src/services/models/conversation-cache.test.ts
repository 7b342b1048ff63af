import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CachedConversation, ConversationCache } from './conversation-cache.ts';

function conversation(seq: number, bytes: number): CachedConversation {
  return { seq, messages: [{ role: 'user', content: `call ${seq}` }], messageTokens: 5, bytes };
}

describe('ConversationCache', () => {
  it('holds each run’s latest conversation, found only by that call’s seq', () => {
    const cache = new ConversationCache({ maxBytes: 1_000, maxRuns: 10 });
    cache.remember('run_a', conversation(1, 10));
    assert.equal(cache.get('run_a', 1)?.seq, 1);
    assert.equal(cache.get('run_b', 1), undefined);
    cache.remember('run_a', conversation(3, 20));
    assert.equal(cache.get('run_a', 1), undefined, 'a later call replaces an earlier one');
    assert.equal(cache.get('run_a', 3)?.seq, 3);
    // Calls of one run may end out of order: an earlier one does not replace a later one.
    cache.remember('run_a', conversation(2, 30));
    assert.equal(cache.get('run_a', 3)?.seq, 3);
    assert.deepEqual(cache.stats, { runs: 1, bytes: 20 });
  });

  it('lets an ended run’s conversation go, and the bytes it took', () => {
    const cache = new ConversationCache({ maxBytes: 1_000, maxRuns: 10 });
    cache.remember('run_a', conversation(1, 10));
    cache.remember('run_b', conversation(4, 25));
    cache.forget('run_a');
    cache.forget('run_c');
    assert.equal(cache.get('run_a', 1), undefined);
    assert.equal(cache.get('run_b', 4)?.seq, 4);
    assert.deepEqual(cache.stats, { runs: 1, bytes: 25 });
  });

  it('drops the least recently used conversations past its size or its number of runs', () => {
    const cache = new ConversationCache({ maxBytes: 100, maxRuns: 3 });
    cache.remember('run_a', conversation(1, 40));
    cache.remember('run_b', conversation(1, 40));
    assert.ok(cache.get('run_a', 1), 'run_a is now the most recently used');
    cache.remember('run_c', conversation(1, 40));
    assert.equal(cache.get('run_b', 1), undefined, 'past 100: the least recently used went');
    assert.ok(cache.get('run_a', 1));
    assert.deepEqual(cache.stats, { runs: 2, bytes: 80 });
    cache.remember('run_d', conversation(1, 1));
    cache.remember('run_e', conversation(1, 1));
    assert.equal(cache.stats.runs, 3);
    assert.equal(cache.get('run_c', 1), undefined, 'past 3 runs: the least recently used went');
    assert.ok(cache.get('run_a', 1));
    // A conversation larger than the whole cache is not held (and evicts nothing).
    cache.remember('run_f', conversation(1, 101));
    assert.equal(cache.get('run_f', 1), undefined);
    assert.equal(cache.stats.runs, 3);
  });
});
