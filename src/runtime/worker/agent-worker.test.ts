import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { recordingLogger } from '../../../test/support/recording-logger.ts';
import { silentLogger } from '../../../test/support/silent-logger.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import {
  AgentWorker,
  type AgentWorkerOptions,
  type LaunchedProcess,
  type WorkerExit,
} from './agent-worker.ts';

/**
 * A real child process running `script`, with an IPC pipe on fd 3 and its own process group,
 * as the plain launcher starts workers.
 */
function launchedScript(script: string): LaunchedProcess & { readonly disposed: () => boolean } {
  const child = spawn(process.execPath, ['-e', script], {
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

/** A real child process that never says hello (it only sleeps). */
function silentProcess(): LaunchedProcess & { readonly disposed: () => boolean } {
  return launchedScript('setTimeout(() => {}, 60_000)');
}

function workerWith(
  launch: (signal: AbortSignal) => Promise<LaunchedProcess>,
  exits: WorkerExit[] = [],
  options: Partial<AgentWorkerOptions> = {},
) {
  return new AgentWorker({
    agent: { id: 'agt_1', name: 'probe', version: '1.0.0' },
    launch,
    gate: { call: () => Promise.reject(new Error('no calls in this test')) },
    clock: systemClock,
    logger: silentLogger(),
    watchdogTimeoutMs: 10_000,
    startTimeoutMs: 200,
    maxFrameBytes: 1024 * 1024,
    onStep: () => undefined,
    onRunDone: () => undefined,
    onExit: (exit) => exits.push(exit),
    ...options,
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

/** A real child that says hello, then does `then` (a script with `send(frame)` and `channel`). */
function scriptedProcess(then: string): LaunchedProcess {
  const script = `
    const channel = new (require('node:net').Socket)({ fd: 3, readable: true, writable: true });
    const send = (message) => {
      const text = Buffer.from(JSON.stringify(message));
      const frame = Buffer.alloc(4 + text.length);
      frame.writeUInt32BE(text.length, 0);
      text.copy(frame, 4);
      return channel.write(frame);
    };
    send({ type: 'hello', protocol: 1, pid: process.pid });
    ${then}
  `;
  return launchedScript(script);
}

describe('AgentWorker and an untrusted worker', () => {
  it('stops reading from a worker that does not read its answers, and its watchdog then kills it', async () => {
    // Calls for a run it was never given (each answered at once), sent as fast as the pipe
    // takes them, while it never reads fd 3.
    const launched = scriptedProcess(`
      channel.pause();
      let call = 0;
      const flood = () => {
        while (send({ type: 'syscall', runId: 'run_forged', call: call++, intent: { kind: 'clock.now', resource: '', params: {} } })) {}
        channel.once('drain', flood);
      };
      flood();
    `);
    const exits: WorkerExit[] = [];
    const worker = workerWith(() => Promise.resolve(launched), exits, {
      watchdogTimeoutMs: 1_500,
      startTimeoutMs: 5_000,
    });
    await worker.start();
    let mostUnread = 0;
    const sampler = setInterval(() => {
      mostUnread = Math.max(mostUnread, launched.channel.writableLength);
    }, 10);
    const patience = new AbortController();
    const stopped = await Promise.race([
      worker.ended.then(() => true),
      delay(20_000, false, { signal: patience.signal }),
    ]);
    patience.abort();
    clearInterval(sampler);
    if (!stopped) worker.kill('stopped', 'the test gave up');
    assert.ok(stopped, 'the flooding worker was stopped');
    assert.deepEqual(
      exits.map((exit) => exit.reason),
      ['watchdog'],
    );
    // Held at the limit (1 MiB) plus what one chunk of calls is answered with.
    assert.ok(mostUnread > 0, 'the worker was sent answers it did not read');
    assert.ok(mostUnread < 2 * 1024 * 1024, `${mostUnread} bytes waited for the worker`);
  });

  it('does not blame a worker for the silence of a node whose own event loop was held up', async () => {
    const launched = scriptedProcess(`
      setInterval(() => send({ type: 'heartbeat', heapUsed: 1, rss: 1 }), 50);
    `);
    const exits: WorkerExit[] = [];
    const worker = workerWith(() => Promise.resolve(launched), exits, {
      watchdogTimeoutMs: 400,
      startTimeoutMs: 5_000,
    });
    await worker.start();
    // The node busy on one piece of work, three times as long as the watchdog's timeout.
    const busyUntil = performance.now() + 1_200;
    while (performance.now() < busyUntil) {
      // Holding the event loop, as a long synchronous task would.
    }
    await delay(600);
    assert.deepEqual(exits, [], 'the worker was not killed');
    worker.kill('stopped', 'test done');
    await worker.ended;
  });

  it('logs a bounded amount of what a worker writes to stderr, and says what it dropped', async () => {
    const launched = scriptedProcess(`
      const line = 'x'.repeat(1000) + '\\n';
      for (let index = 0; index < 5000; index += 1) process.stderr.write(line);
      channel.destroy();
    `);
    // Its exit may come before the last of its output is read; its streams' close, after.
    const closed = once(launched.child, 'close');
    const recorded = recordingLogger('info');
    const worker = workerWith(() => Promise.resolve(launched), [], {
      logger: recorded.logger,
      startTimeoutMs: 5_000,
    });
    await worker.start();
    await closed;
    const lines = recorded.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const logged = lines.filter((line) => line.msg === 'agent worker wrote to stderr');
    const characters = logged.reduce((sum, line) => sum + String(line.stderr).length, 0);
    assert.ok(logged.length > 0);
    assert.ok(characters <= 64 * 1024, `${characters} characters of stderr were logged`);
    assert.equal(
      lines.filter((line) => /writes more output than the log takes/.test(String(line.msg))).length,
      1,
      `${lines.length} lines logged`,
    );
  });
});
