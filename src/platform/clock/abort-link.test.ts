import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { followAborts } from './abort-link.ts';

describe('followAborts', () => {
  it('aborts with the reason of whichever followed signal aborts first', () => {
    const first = new AbortController();
    const second = new AbortController();
    const call = new AbortController();
    followAborts([first.signal, second.signal], (reason) => call.abort(reason));
    assert.equal(call.signal.aborted, false);
    second.abort(new Error('second'));
    assert.equal(call.signal.aborted, true);
    assert.equal((call.signal.reason as Error).message, 'second');
  });

  it('aborts at once when a followed signal already has, and adds no listener', () => {
    const done = AbortSignal.abort(new Error('already'));
    const open = new AbortController();
    const call = new AbortController();
    followAborts([open.signal, done], (reason) => call.abort(reason));
    assert.equal((call.signal.reason as Error).message, 'already');
    assert.equal(getEventListeners(open.signal, 'abort').length, 0);
  });

  it('stops following when told, leaving no listener behind', () => {
    const shared = new AbortController();
    const calls = Array.from({ length: 3 }, () => new AbortController());
    const unfollows = calls.map((call) =>
      followAborts([shared.signal], (reason) => call.abort(reason)),
    );
    assert.equal(getEventListeners(shared.signal, 'abort').length, 3);
    for (const unfollow of unfollows) unfollow();
    assert.equal(getEventListeners(shared.signal, 'abort').length, 0);
    shared.abort();
    assert.ok(calls.every((call) => !call.signal.aborted));
  });
});
