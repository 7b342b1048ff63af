import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { silentLogger } from '../../../test/support/silent-logger.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { AgentWorker, type LaunchedProcess, type WorkerExit } from './agent-worker.ts';

/**
 * A real child process that never says hello (it only sleeps), with an IPC pipe on fd 3 and
 * its own process group, as the plain launcher starts workers.
 */
function silentProcess(): LaunchedProcess & { readonly disposed: () => boolean } {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: {},
    detached: true,
  });
  let disposed = false;
  return {
    child,
    channel: child.stdio[3] as Duplex,
    applied: [],
    missing: [],
    oomKills: () => Promise.resolve(0),
    dispose: async () => {
      disposed = true;
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(-child.pid, 'SIGKILL');
      }
    },
    disposed: () => disposed,
  };
}

function workerWith(
  launch: (signal: AbortSignal) => Promise<LaunchedProcess>,
  exits: WorkerExit[] = [],
) {
  return new AgentWorker({
    agent: { id: 'agt_1', name: 'probe', version: '1.0.0' },
    launch,
    gate: { call: () => Promise.reject(new Error('no calls in this test')) },
    clock: systemClock,
    logger: silentLogger(),
    watchdogTimeoutMs: 10_000,
    startTimeoutMs: 200,
    onStep: () => undefined,
    onRunDone: () => undefined,
    onExit: (exit) => exits.push(exit),
  });
}

describe('AgentWorker start', () => {
  it('gives up on a launch that outlasts the start timeout, and disposes of what it launches later', async () => {
    const late = Promise.withResolvers<LaunchedProcess>();
    const worker = workerWith(() => late.promise);
    const failed = await rejectsWithCode(worker.start(), 'KEEL_WORKER_CRASHED');
    assert.match(failed.message, /its launch took longer than the start timeout \(200 ms\)/);
    const launched = silentProcess();
    const exited = once(launched.child, 'exit');
    late.resolve(launched);
    await exited;
    assert.equal(launched.disposed(), true, 'the late process was disposed of');
    assert.equal(launched.child.signalCode, 'SIGKILL');
  });

  it('kills a process that does not say hello within the start timeout', async () => {
    const launched = silentProcess();
    const exits: WorkerExit[] = [];
    const worker = workerWith(() => Promise.resolve(launched), exits);
    const failed = await rejectsWithCode(worker.start(), 'KEEL_WORKER_CRASHED');
    assert.match(failed.message, /no hello within the start timeout \(200 ms\)/);
    assert.equal(launched.child.signalCode, 'SIGKILL');
    assert.deepEqual(
      exits.map((exit) => [exit.reason, exit.expected]),
      [['start-failed', false]],
    );
  });

  it('ends a start at once when it is abandoned, while launching or while waiting for hello', async () => {
    const hanging = workerWith(() => new Promise<never>(() => undefined));
    const launching = hanging.start();
    hanging.abandonStart('stop by operator:ana');
    const whileLaunching = await rejectsWithCode(launching, 'KEEL_WORKER_CRASHED');
    assert.match(whileLaunching.message, /did not start: stop by operator:ana$/);

    const launched = silentProcess();
    const worker = workerWith(() => Promise.resolve(launched));
    const starting = worker.start();
    await new Promise((resolve) => setTimeout(resolve, 20));
    worker.abandonStart('remove by operator:ana');
    const whileGreeting = await rejectsWithCode(starting, 'KEEL_WORKER_CRASHED');
    assert.match(whileGreeting.message, /did not start: remove by operator:ana$/);
    assert.equal(launched.child.signalCode, 'SIGKILL', 'its process was killed');
  });

  it("aborts the launch's signal when its start is given up on, so sandbox set-up can stop", async () => {
    // A launch that ends only when told to, as launchSandboxedWorker does with its signal.
    const stoppable = (seen: AbortSignal[]) => (signal: AbortSignal) => {
      seen.push(signal);
      return new Promise<never>((_, reject) =>
        signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
      );
    };
    const abandoned: AbortSignal[] = [];
    const worker = workerWith(stoppable(abandoned));
    const starting = worker.start();
    assert.equal(abandoned[0]?.aborted, false, 'the signal is live while the launch runs');
    worker.abandonStart('stop by operator:ana');
    await rejectsWithCode(starting, 'KEEL_WORKER_CRASHED');
    assert.equal(abandoned[0]?.aborted, true);
    assert.match(String(abandoned[0]?.reason), /given up on: stop by operator:ana/);

    const timedOut: AbortSignal[] = [];
    await rejectsWithCode(workerWith(stoppable(timedOut)).start(), 'KEEL_WORKER_CRASHED');
    assert.equal(timedOut[0]?.aborted, true);
    assert.match(String(timedOut[0]?.reason), /given up on: start timeout/);
  });
});
