import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { followAbort } from './abort-link.ts';

describe('followAbort', () => {
  it('passes on the reason when the followed signal aborts', () => {
    const caller = new AbortController();
    const call = new AbortController();
    followAbort(caller.signal, (reason) => call.abort(reason));
    assert.equal(call.signal.aborted, false);
    caller.abort(new Error('cancelled'));
    assert.equal((call.signal.reason as Error).message, 'cancelled');
  });

  it('aborts at once when the signal already has, and adds no listener', () => {
    const done = AbortSignal.abort(new Error('already'));
    const call = new AbortController();
    followAbort(done, (reason) => call.abort(reason));
    assert.equal((call.signal.reason as Error).message, 'already');
    assert.equal(getEventListeners(done, 'abort').length, 0);
  });

  it('stops following when told, leaving no listener behind', () => {
    const shared = new AbortController();
    const calls = Array.from({ length: 3 }, () => new AbortController());
    const unfollows = calls.map((call) =>
      followAbort(shared.signal, (reason) => call.abort(reason)),
    );
    assert.equal(getEventListeners(shared.signal, 'abort').length, 3);
    for (const unfollow of unfollows) unfollow();
    assert.equal(getEventListeners(shared.signal, 'abort').length, 0);
    shared.abort();
    assert.ok(calls.every((call) => !call.signal.aborted));
  });
});
