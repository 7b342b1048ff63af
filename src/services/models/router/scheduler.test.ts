import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { abortReasonOf, systemScheduler } from './scheduler.ts';

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}

describe('systemScheduler', () => {
  it('resolves a sleep no earlier than its duration on the monotonic clock', async () => {
    const started = systemScheduler.now();
    await systemScheduler.sleep(5, new AbortController().signal);
    assert.ok(systemScheduler.now() - started >= 5);
  });

  it('rejects with KEEL_ABORTED as soon as the signal aborts and clears its timer', async () => {
    const controller = new AbortController();
    const before = activeTimers();
    const sleeping = systemScheduler.sleep(60_000, controller.signal);
    assert.equal(activeTimers(), before + 1);
    controller.abort();
    await assert.rejects(sleeping, (error) => isKeelError(error) && error.code === 'KEEL_ABORTED');
    assert.equal(activeTimers(), before);
  });

  it('rejects with KEEL_TIMEOUT when the signal timed out', async () => {
    const controller = new AbortController();
    const sleeping = systemScheduler.sleep(60_000, controller.signal);
    controller.abort(new DOMException('deadline passed', 'TimeoutError'));
    await assert.rejects(sleeping, (error) => isKeelError(error) && error.code === 'KEEL_TIMEOUT');
  });

  it('rejects at once for an already aborted signal or a negative duration', async () => {
    await assert.rejects(
      systemScheduler.sleep(10, AbortSignal.abort()),
      (error) => isKeelError(error) && error.code === 'KEEL_ABORTED',
    );
    await assert.rejects(
      systemScheduler.sleep(-1, new AbortController().signal),
      (error) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
    );
  });
});

describe('abortReasonOf', () => {
  it('keeps a KeelError reason and wraps other reasons as KEEL_ABORTED', () => {
    const controller = new AbortController();
    controller.abort('caller went away');
    const reason = abortReasonOf(controller.signal);
    assert.equal(reason.code, 'KEEL_ABORTED');
    const again = new AbortController();
    again.abort(reason);
    assert.equal(abortReasonOf(again.signal), reason);
  });
});
