import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { ManualScheduler } from './manual-scheduler.ts';

const never = new AbortController().signal;

describe('ManualScheduler', () => {
  it('resolves due sleeps in deadline order, each at its own deadline', async () => {
    const scheduler = new ManualScheduler();
    const woken: Array<[string, number]> = [];
    const track = (name: string, milliseconds: number) =>
      scheduler.sleep(milliseconds, never).then(() => woken.push([name, scheduler.now()]));
    const sleeps = [
      track('late', 300),
      track('early', 100),
      track('tie-first', 200),
      track('tie-second', 200),
    ];
    await scheduler.advance(250);
    assert.deepEqual(woken, [
      ['early', 100],
      ['tie-first', 200],
      ['tie-second', 200],
    ]);
    assert.equal(scheduler.now(), 250);
    await scheduler.advance(50);
    await Promise.all(sleeps);
    assert.deepEqual(woken.at(-1), ['late', 300]);
  });

  it('honours a sleep started by a continuation within the same advance', async () => {
    const scheduler = new ManualScheduler();
    const times: number[] = [];
    const chain = (async () => {
      await scheduler.sleep(100, never);
      times.push(scheduler.now());
      await scheduler.sleep(100, never);
      times.push(scheduler.now());
    })();
    await scheduler.advance(1_000);
    await chain;
    assert.deepEqual(times, [100, 200]);
    assert.equal(scheduler.now(), 1_000);
  });

  it('does not resolve a sleep before its deadline', async () => {
    const scheduler = new ManualScheduler();
    let done = false;
    const sleeping = scheduler.sleep(100, never).then(() => {
      done = true;
    });
    await scheduler.advance(99);
    assert.equal(done, false);
    await scheduler.advance(1);
    await sleeping;
    assert.equal(done, true);
  });

  it('rejects an aborted sleep with the abort reason and forgets it', async () => {
    const scheduler = new ManualScheduler();
    const controller = new AbortController();
    const sleeping = scheduler.sleep(100, controller.signal);
    assert.equal(scheduler.pendingSleeps, 1);
    controller.abort(new DOMException('too slow', 'TimeoutError'));
    await assert.rejects(sleeping, (error) => isKeelError(error) && error.code === 'KEEL_TIMEOUT');
    assert.equal(scheduler.pendingSleeps, 0);
    await assert.rejects(
      scheduler.sleep(100, AbortSignal.abort()),
      (error) => isKeelError(error) && error.code === 'KEEL_ABORTED',
    );
  });

  it('runs concurrent advances one after another', async () => {
    const scheduler = new ManualScheduler(1_000);
    const woken: number[] = [];
    const sleeping = scheduler.sleep(150, never).then(() => woken.push(scheduler.now()));
    await Promise.all([scheduler.advance(100), scheduler.advance(100)]);
    await sleeping;
    assert.deepEqual(woken, [1_150]);
    assert.equal(scheduler.now(), 1_200);
  });

  it('refuses to move time backwards', async () => {
    await assert.rejects(
      new ManualScheduler().advance(-1),
      (error) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
    );
  });
});
