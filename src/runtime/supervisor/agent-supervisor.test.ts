import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../test/support/silent-logger.ts';
import type { AgentDirectory } from '../../kernel/identity/agent-directory.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { AgentState } from '../../platform/storage/ports/agent-store.ts';
import type { AgentWorker, WorkerExit } from '../worker/agent-worker.ts';
import { AgentSupervisor } from './agent-supervisor.ts';
import { RestartPolicy } from './restart-policy.ts';

/**
 * A worker whose start and exit the test drives, so that the order of events — which real
 * processes make a matter of timing — is fixed. The supervisor sees it through the same
 * callbacks a real worker uses.
 */
class ScriptedWorker {
  readonly #onExit: (exit: WorkerExit) => void;
  #started = Promise.withResolvers<void>();
  #ended = Promise.withResolvers<void>();
  runs: string[] = [];

  constructor(onExit: (exit: WorkerExit) => void) {
    this.#onExit = onExit;
  }

  start(): Promise<void> {
    return this.#started.promise;
  }

  ready(): void {
    this.#started.resolve();
  }

  /** Why its start was given up on, if it was (its start then fails, as a real one's does). */
  abandoned: string | undefined;

  /** When set, an abandoned start ends the process first, as one waiting for hello does. */
  launched = false;

  abandonStart(reason: string): void {
    this.abandoned = reason;
    if (this.launched) {
      this.#end({
        expected: false,
        reason: 'start-failed',
        code: null,
        signal: 'SIGKILL',
        detail: reason,
        runs: [],
      });
    }
    this.#started.reject(new KeelError('KEEL_WORKER_CRASHED', `did not start: ${reason}`));
  }

  /** Dies as a `kill -9` makes it: the exit is reported, then a pending start fails. */
  kill(): void {
    this.#end({
      expected: false,
      reason: 'exited',
      code: null,
      signal: 'SIGKILL',
      detail: 'exit code none, signal SIGKILL',
      runs: this.runs,
    });
  }

  get ended(): Promise<void> {
    return this.#ended.promise;
  }

  /** Whether it holds its syscalls (the supervisor paused it). */
  held = false;

  pause(): void {
    this.held = true;
  }

  resume(): void {
    this.held = false;
  }

  /** Whether the supervisor asked it to stop (it stops when the test says, see `stopped`). */
  stopRequested = false;

  stop(): Promise<void> {
    this.stopRequested = true;
    if (this.holdStop) return this.#ended.promise;
    this.stopped();
    return Promise.resolve();
  }

  /** When set, `stop` waits for the test to end the worker (`stopped` or `kill`). */
  holdStop = false;

  stopped(): void {
    this.#end({
      expected: true,
      reason: 'stopped',
      code: 0,
      signal: null,
      detail: 'stopped',
      runs: this.runs,
    });
  }

  #done = false;

  /** One end per worker, as a process exits once. */
  #end(exit: WorkerExit): void {
    if (this.#done) return;
    this.#done = true;
    this.#onExit(exit);
    this.#ended.resolve();
    this.#started.reject(new KeelError('KEEL_WORKER_CRASHED', 'the worker did not start: ended'));
  }
}

function supervised({
  setStateMs = 0,
  failing = [],
  restartDelayMs = 5,
}: {
  readonly setStateMs?: number;
  readonly restartDelayMs?: number;
  /** States whose first recording fails with a storage error. */
  readonly failing?: readonly AgentState[];
} = {}) {
  const transitions: AgentState[] = [];
  const workers: ScriptedWorker[] = [];
  const interrupted: string[][] = [];
  const available: boolean[] = [];
  const toFail = new Set(failing);
  const directory = {
    setState: async (_agentId: string, state: AgentState) => {
      // Recording a state takes this long (storage is slow).
      if (setStateMs > 0) await sleep(setStateMs);
      if (toFail.delete(state)) throw new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy');
      transitions.push(state);
      return {};
    },
  } as unknown as AgentDirectory;
  const supervisor = new AgentSupervisor(
    {
      agent: { id: 'agt_1', name: 'probe' },
      directory,
      policy: new RestartPolicy({
        initialDelayMs: restartDelayMs,
        maxDelayMs: restartDelayMs,
        budget: 100,
        windowMs: 60_000,
      }),
      clock: systemClock,
      logger: silentLogger(),
      createWorker: (events) => {
        const worker = new ScriptedWorker(events.onExit);
        workers.push(worker);
        return worker as unknown as AgentWorker;
      },
      onStep: () => undefined,
      onRunDone: () => undefined,
      onRunsInterrupted: async (runIds) => {
        interrupted.push([...runIds]);
      },
      onAvailability: (_agentId, now) => {
        available.push(now);
      },
      stopGraceMs: 100,
    },
    'created',
  );
  /** Starts the agent and lets its first worker say it is ready. */
  const startRunning = async (): Promise<void> => {
    const starting = supervisor.start('deployed');
    await until(() => workers.length === 1);
    workers[0]?.ready();
    await starting;
  };
  return { supervisor, transitions, workers, interrupted, available, startRunning };
}

async function until(check: () => boolean): Promise<void> {
  for (let waited = 0; waited < 5000; waited += 5) {
    if (check()) return;
    await sleep(5);
  }
  assert.fail('the supervisor did not get there');
}

describe('AgentSupervisor', () => {
  it('counts a worker killed while it starts as one crash, and runs the next one', async () => {
    const { supervisor, transitions, workers } = supervised();
    const starting = supervisor.start('deployed');
    await until(() => workers.length === 1);
    workers[0]?.kill();
    await starting;
    await until(() => workers.length === 2);
    workers[1]?.ready();
    await until(() => supervisor.state === 'running');
    // Give a second (stale) restart time to fire: there must be none.
    await sleep(50);
    assert.equal(workers.length, 2);
    assert.equal(supervisor.state, 'running');
    assert.equal(supervisor.available, true);
    assert.deepEqual(transitions, ['starting', 'crashed', 'restarting', 'starting', 'running']);
  });

  it('gives up on a worker still starting when the agent is stopped or restarted, counting no crash', async () => {
    const stopped = supervised();
    const starting = stopped.supervisor.start('deployed');
    await until(() => stopped.workers.length === 1);
    // The worker would never start: the stop does not wait for it.
    await stopped.supervisor.stop('stop by operator:ana');
    await starting;
    assert.equal(stopped.workers[0]?.abandoned, 'stop by operator:ana');
    await sleep(50);
    assert.equal(stopped.supervisor.state, 'stopped');
    assert.equal(stopped.workers.length, 1, 'no restart');
    assert.deepEqual(stopped.transitions, ['starting', 'stopped']);

    const restarted = supervised();
    const first = restarted.supervisor.start('deployed');
    await until(() => restarted.workers.length === 1);
    const restarting = restarted.supervisor.restart('restart by operator:ana');
    await first;
    await until(() => restarted.workers.length === 2);
    restarted.workers[1]?.ready();
    await restarting;
    assert.equal(restarted.workers[0]?.abandoned, 'restart by operator:ana');
    assert.equal(restarted.supervisor.state, 'running');
    assert.deepEqual(restarted.transitions, ['starting', 'stopped', 'starting', 'running']);
  });

  it('gives up on a start that is still being recorded, or whose process waits for hello', async () => {
    const slow = supervised({ setStateMs: 30 });
    const starting = slow.supervisor.start('deployed');
    await sleep(5);
    await slow.supervisor.stop('stop by operator:ana');
    await starting;
    assert.equal(slow.workers.length, 0, 'no worker launched');
    assert.deepEqual(slow.transitions, ['starting', 'stopped']);

    const greeting = supervised();
    const first = greeting.supervisor.start('deployed');
    await until(() => greeting.workers.length === 1);
    if (greeting.workers[0] !== undefined) greeting.workers[0].launched = true;
    await greeting.supervisor.stop('stop by operator:ana');
    await first;
    await sleep(50);
    assert.equal(greeting.workers[0]?.abandoned, 'stop by operator:ana');
    assert.equal(greeting.workers.length, 1, 'its exit is not taken for a crash: no restart');
    assert.deepEqual(greeting.transitions, ['starting', 'stopped']);
  });

  it('restarts a crashed worker even when storage cannot record the crash', async () => {
    const { supervisor, workers, available, startRunning } = supervised({
      failing: ['crashed', 'restarting'],
    });
    await startRunning();
    workers[0]?.kill();
    await until(() => workers.length === 2);
    workers[1]?.ready();
    await until(() => supervisor.available);
    assert.equal(supervisor.state, 'running');
    assert.equal(available.at(-1), true);
    await supervisor.close();
  });

  it('leaves the worker running when its pause cannot be recorded', async () => {
    const { supervisor, workers, startRunning } = supervised({ failing: ['paused'] });
    await startRunning();
    await assert.rejects(supervisor.pause('operator'), { code: 'KEEL_STORAGE_UNAVAILABLE' });
    assert.equal(workers[0]?.held, false, 'its syscalls are not held');
    assert.deepEqual([supervisor.state, supervisor.available], ['running', true]);
    await supervisor.pause('operator');
    assert.equal(workers[0]?.held, true);
    await supervisor.close();
  });

  it('brings a worker that crashed while paused back paused', async () => {
    const { supervisor, workers, available, startRunning } = supervised();
    await startRunning();
    await supervisor.pause('operator');
    workers[0]?.kill();
    await until(() => workers.length === 2);
    workers[1]?.ready();
    await until(() => supervisor.state === 'paused');
    assert.equal(workers[1]?.held, true, 'the new worker holds its syscalls');
    assert.equal(supervisor.available, false);
    assert.equal(available.at(-1), false);
    await supervisor.resume('operator');
    assert.deepEqual([workers[1]?.held, supervisor.available], [false, true]);
    await supervisor.close();
  });

  it('arms no restart when the node closes while a crash is being recorded', async () => {
    const { supervisor, workers, startRunning } = supervised({
      setStateMs: 30,
      restartDelayMs: 60_000,
    });
    await startRunning();
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout');
    const before = timers().length;
    workers[0]?.kill();
    await sleep(10);
    await supervisor.close();
    // A restart armed now would hold the process open for a minute.
    assert.equal(timers().length, before, 'no restart timer outlives close');
    assert.equal(workers.length, 1);
  });

  it('keeps an operator stop when the worker dies on its own while stopping', async () => {
    const { supervisor, workers, startRunning } = supervised();
    await startRunning();
    if (workers[0] !== undefined) workers[0].holdStop = true;
    const stopping = supervisor.stop('operator');
    await until(() => workers[0]?.stopRequested === true);
    // The watchdog (say) kills it before the stop's own exit: still the stop's end.
    workers[0]?.kill();
    await stopping;
    await sleep(50);
    assert.equal(supervisor.state, 'stopped');
    assert.equal(workers.length, 1, 'no restart after a stop');
  });

  it('ends a restart running when the old worker dies on its own while stopping', async () => {
    const { supervisor, workers, interrupted, startRunning } = supervised();
    await startRunning();
    if (workers[0] !== undefined) workers[0].holdStop = true;
    const restarting = supervisor.restart('operator');
    await until(() => workers[0]?.stopRequested === true);
    if (workers[0] !== undefined) workers[0].runs = ['run_late'];
    workers[0]?.kill();
    await until(() => workers.length === 2);
    workers[1]?.ready();
    await restarting;
    await sleep(50);
    assert.equal(supervisor.state, 'running');
    assert.equal(supervisor.available, true);
    assert.equal(workers.length, 2);
    // Its run went back to the run manager before the restart returned.
    assert.deepEqual(interrupted, [['run_late']]);
  });
});
