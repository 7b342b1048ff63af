import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { createKernelHarness, type KernelHarness } from '../../../test/support/kernel-harness.ts';
import { recordingLogger } from '../../../test/support/recording-logger.ts';
import { silentLogger } from '../../../test/support/silent-logger.ts';
import { parseIntent } from '../../kernel/gate/syscall.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { RunRecord, RunStore } from '../../platform/storage/ports/run-store.ts';
import type { Storage } from '../../platform/storage/storage.ts';
import type { WorkerExit } from '../worker/agent-worker.ts';
import { RunManager } from './run-manager.ts';

/** An audit store whose appends of entries of `kind` fail with a storage error. */
function auditFailingFor(kind: string): (storage: Storage) => Storage {
  return (storage) => ({
    ...storage,
    // The store is a class instance: its methods are carried over one by one.
    audit: {
      ...storage.audit,
      head: () => storage.audit.head(),
      read: (fromSeq, limit) => storage.audit.read(fromSeq, limit),
      tail: (limit) => storage.audit.tail(limit),
      count: () => storage.audit.count(),
      append: (drafts) =>
        drafts.some((draft) => draft.kind === kind)
          ? Promise.reject(new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy'))
          : storage.audit.append(drafts),
    },
  });
}

/** `updateStatus` whose first move of a run to `suspended` fails with a storage error. */
function failingSuspension(updateStatus: RunStore['updateStatus']): RunStore['updateStatus'] {
  let left = 1;
  return (id, status, ...rest) => {
    if (status !== 'suspended' || left <= 0) return updateStatus(id, status, ...rest);
    left -= 1;
    return Promise.reject(new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy'));
  };
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let turn = 0; turn < 400; turn += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** A run manager over a real kernel and SQLite file, whose "workers" are a list of dispatches. */
async function createManager(
  harness: KernelHarness,
  {
    maxAttempts = 3,
    approvalPending,
    runs = (stored) => stored,
    logger = silentLogger(),
    unstored,
  }: {
    readonly maxAttempts?: number;
    readonly approvalPending?: (approvalId: string) => Promise<boolean>;
    /** Stands in for the run store (to make it fail, or wait). */
    readonly runs?: (stored: RunStore) => RunStore;
    readonly logger?: Logger;
    /** An agent the manager takes as deployed, of which storage has no record. */
    readonly unstored?: string;
  } = {},
) {
  const agent = await harness.runningAgent();
  const dispatched: RunRecord[] = [];
  const started: { runId: string; journalHead: number }[] = [];
  const manager = new RunManager({
    runs: runs(harness.storage.runs),
    budgets: harness.kernel.budgets,
    audit: harness.kernel.audit,
    bus: harness.bus,
    clock: systemClock,
    logger,
    actor: 'node:test',
    maxConcurrent: 4,
    agent: (agentId) =>
      agentId === agent.id || agentId === unstored
        ? { concurrency: 4, maxAttempts, runBudget: undefined }
        : undefined,
    attemptStarted: (run, journalHead) => started.push({ runId: run.id, journalHead }),
    lastReplayStarted: (run, journalHead) => harness.kernel.lastReplayStarted(run, journalHead),
    lastReplayEnded: (runId) => harness.kernel.lastReplayEnded(runId),
    ...(approvalPending === undefined ? {} : { approvalPending }),
    retryDelayMs: 20,
    dispatch: (run) => {
      dispatched.push(run);
    },
    cancelInWorker: () => undefined,
  });
  const submit = () =>
    manager.submit({
      agentId: agent.id,
      task: { prompt: 'hi' },
      origin: 'test',
      actor: 'operator:test',
    });
  /** Resolves once `count` runs have been handed to "workers". */
  const dispatchedCount = (count: number) =>
    until(() => dispatched.length >= count, `${count} runs were handed to a worker`);
  return { agent, manager, dispatched, started, submit, dispatchedCount };
}

/** How a worker ends when it is killed with runs on it. */
function workerKilled(runId: string): WorkerExit {
  return {
    expected: false,
    reason: 'exited',
    code: null,
    signal: 'SIGKILL',
    detail: 'killed',
    runs: [runId],
  };
}

/** How a run's worker reports that a call of the run waits for a human. */
function approvalRequired(approvalId: string) {
  return {
    ok: false as const,
    error: new KeelError('KEEL_APPROVAL_REQUIRED', 'this call needs an approval', {
      details: { approvalId },
    }),
  };
}

/** A store method that fails its first `times` calls with a storage error, then works. */
function failing<Arguments extends unknown[], Result>(
  method: (...parameters: Arguments) => Promise<Result>,
  times = 1,
): (...parameters: Arguments) => Promise<Result> {
  let left = times;
  return (...parameters) => {
    if (left <= 0) return method(...parameters);
    left -= 1;
    return Promise.reject(new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy'));
  };
}

async function auditKinds(harness: KernelHarness, runId: string): Promise<string[]> {
  return (await harness.kernel.audit.tail(100))
    .filter((entry) => entry.runId === runId)
    .map((entry) => `${entry.kind}:${entry.outcome}`);
}

/** A logger of errors only, and the lines it wrote. */
const errorLines = () => recordingLogger('error');

describe('RunManager', () => {
  it('audits a submission before its attempt starts, and hands the attempt its journal head', async () => {
    await using harness = await createKernelHarness();
    const { manager, dispatched, started, submit, dispatchedCount } = await createManager(harness);
    const run = await submit();
    await dispatchedCount(1);
    assert.deepEqual(
      [dispatched[0]?.id, dispatched[0]?.status, dispatched[0]?.attempts],
      [run.id, 'running', 1],
    );
    assert.deepEqual(started, [{ runId: run.id, journalHead: 0 }]);
    await manager.finished(run.id, { ok: true, result: { answer: 42 } });
    const stored = await harness.storage.runs.get(run.id);
    assert.deepEqual([stored?.status, stored?.result], ['succeeded', { answer: 42 }]);
    assert.deepEqual(await auditKinds(harness, run.id), [
      'run.submit:pending',
      'run.end:succeeded',
    ]);
  });

  it('stores a run, its submission entry and its first attempt in one transaction', async () => {
    await using harness = await createKernelHarness();
    const { dispatched, submit, dispatchedCount } = await createManager(harness);
    const before = await harness.storage.statistics();
    const run = await submit();
    await dispatchedCount(1);
    const after = await harness.storage.statistics();
    // The submission's transaction, and the one that read `after`.
    assert.equal(after.transactions - before.transactions, 2);
    assert.equal(after.requests - before.requests, 4);
    assert.equal(dispatched[0]?.id, run.id);
    assert.deepEqual(await auditKinds(harness, run.id), ['run.submit:pending']);
  });

  it('neither starts nor tries again a run storage refused, and audits its submission as failed', async () => {
    await using harness = await createKernelHarness();
    const { lines, logger } = errorLines();
    // Deployed as far as the manager knows, but with no record: storage refuses its runs.
    const ghost = createId('agt');
    const { manager, dispatched } = await createManager(harness, { logger, unstored: ghost });
    await rejectsWithCode(
      manager.submit({ agentId: ghost, task: {}, origin: 'test', actor: 'operator:test' }),
      'KEEL_NOT_FOUND',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(dispatched.length, 0);
    assert.equal(manager.activeCount + manager.pendingCount, 0);
    assert.deepEqual(lines, [], 'nothing is tried again');
    const entries = (await harness.kernel.audit.tail(10)).filter(
      (entry) => entry.kind === 'run.submit',
    );
    assert.deepEqual(
      entries.map((entry) => `${entry.outcome}:${entry.code ?? ''}`),
      ['pending:', 'failed:KEEL_NOT_FOUND'],
    );
    assert.equal(await harness.storage.runs.get(String(entries[0]?.runId)), undefined);
  });

  it('leaves nothing of a submission whose transaction failed, and does not try its start again', async () => {
    await using harness = await createKernelHarness({
      replaceStores: auditFailingFor('run.submit'),
    });
    const { lines, logger } = errorLines();
    let starts = 0;
    const failure = () => new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy');
    const { agent, manager, dispatched } = await createManager(harness, {
      logger,
      // Every request of the transaction fails with it.
      runs: (stored) => ({
        ...stored,
        create: () => Promise.reject(failure()),
        startAttempt: () => {
          starts += 1;
          return Promise.reject(failure());
        },
      }),
    });
    await rejectsWithCode(
      manager.submit({ agentId: agent.id, task: {}, origin: 'test', actor: 'operator:test' }),
      'KEEL_STORAGE_UNAVAILABLE',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(starts, 1, 'its start was asked once, with its run');
    assert.equal(dispatched.length, 0);
    assert.equal(manager.activeCount + manager.pendingCount, 0);
    assert.deepEqual(lines, [], 'nothing is tried again');
    const entries = await harness.kernel.audit.tail(10);
    assert.deepEqual(
      entries.filter((entry) => entry.kind === 'run.submit'),
      [],
    );
  });

  it('refuses a priority out of range before anything of the run is stored', async () => {
    await using harness = await createKernelHarness();
    const { agent, manager } = await createManager(harness);
    await rejectsWithCode(
      manager.submit({
        agentId: agent.id,
        task: {},
        priority: 10,
        origin: 'test',
        actor: 'operator:test',
      }),
      'KEEL_INVALID_ARGUMENT',
    );
    assert.deepEqual(await harness.storage.runs.list({ agentId: agent.id }), []);
    const entries = await harness.kernel.audit.tail(10);
    assert.deepEqual(
      entries.filter((entry) => entry.kind === 'run.submit'),
      [],
    );
  });

  it('fails a run whose result storage cannot hold, saying why, instead of trying its end again', async () => {
    await using harness = await createKernelHarness();
    const { lines, logger } = errorLines();
    const { manager, submit, dispatchedCount } = await createManager(harness, { logger });
    const run = await submit();
    await dispatchedCount(1);
    await manager.finished(run.id, { ok: true, result: 'x'.repeat(1024 * 1024 + 1) });
    const stored = await harness.storage.runs.get(run.id);
    const error = stored?.error as { code: string; message: string; details: { limit: number } };
    assert.deepEqual(
      [stored?.status, stored?.result, error.code, error.details.limit],
      ['failed', null, 'KEEL_PAYLOAD_TOO_LARGE', 1024 * 1024],
    );
    assert.match(error.message, /the run's result could not be stored/);
    assert.deepEqual(await auditKinds(harness, run.id), ['run.submit:pending', 'run.end:failed']);
    assert.deepEqual(lines, [], 'nothing is tried again');
  });

  it('keeps the code of an error too large to store, cut, and is not misled by a request that could not be sent', async () => {
    await using harness = await createKernelHarness();
    const { lines, logger } = errorLines();
    const { manager, submit, dispatchedCount } = await createManager(harness, { logger });
    const cancelled = await submit();
    await dispatchedCount(1);
    // A program's error with 1 MiB of details: it ends as it said, cut.
    await manager.finished(cancelled.id, {
      ok: false,
      error: new KeelError('KEEL_RUN_CANCELLED', 'stopped', {
        details: { unstorable: true, blob: 'x'.repeat(1024 * 1024) },
      }),
    });
    const stored = await harness.storage.runs.get(cancelled.id);
    const error = stored?.error as { code: string; message: string; details?: unknown };
    assert.deepEqual(
      [stored?.status, error.code, error.details],
      ['cancelled', 'KEEL_RUN_CANCELLED', undefined],
    );
    assert.match(error.message, /^stopped… \(cut/);

    // Another request of the same turn that cannot be sent to storage fails alone.
    const run = await submit();
    await dispatchedCount(2);
    const ended = manager.finished(run.id, { ok: true, result: { fine: true } });
    await rejectsWithCode(
      harness.storage.keyValues.set('k', (() => 1) as unknown as JsonValue, Date.now()),
      'KEEL_INVALID_ARGUMENT',
    );
    await ended;
    assert.deepEqual((await harness.storage.runs.get(run.id))?.result, { fine: true });
    assert.deepEqual(lines, [], 'nothing is tried again');
  });

  it('keeps the first of two ends: a cancel wins over a later result, and a result over a later cancel', async () => {
    await using harness = await createKernelHarness();
    const { manager, submit, dispatchedCount } = await createManager(harness);
    const cancelled = await submit();
    await dispatchedCount(1);
    await manager.cancel(cancelled.id, 'operator:ana', 'not needed');
    // The worker's result arrives after the cancel: it changes nothing and is not audited.
    await manager.finished(cancelled.id, { ok: true, result: 'late' });
    const afterCancel = await harness.storage.runs.get(cancelled.id);
    assert.deepEqual([afterCancel?.status, afterCancel?.result], ['cancelled', null]);
    assert.deepEqual(await auditKinds(harness, cancelled.id), [
      'run.submit:pending',
      'run.cancel:cancelled',
    ]);

    const finished = await submit();
    await dispatchedCount(2);
    await manager.finished(finished.id, {
      ok: false,
      error: new KeelError('KEEL_INTERNAL', 'the program broke'),
    });
    const refused = await rejectsWithCode(
      manager.cancel(finished.id, 'operator:ana', 'too late'),
      'KEEL_CONFLICT',
    );
    assert.match(refused.message, /already ended \(failed\)/);
    assert.equal((await harness.storage.runs.get(finished.id))?.status, 'failed');
    await rejectsWithCode(manager.cancel('run_missing', 'operator:ana', 'no'), 'KEEL_NOT_FOUND');

    // At the same moment: one end is stored and audited, the other changes nothing.
    const raced = await submit();
    await dispatchedCount(3);
    const [cancel] = await Promise.allSettled([
      manager.cancel(raced.id, 'operator:ana', 'racing'),
      manager.finished(raced.id, { ok: true, result: 'raced' }),
    ]);
    const status = (await harness.storage.runs.get(raced.id))?.status;
    const ends = (await auditKinds(harness, raced.id)).slice(1);
    assert.equal(ends.length, 1, `one end on record, not ${ends.join(', ')}`);
    assert.equal(cancel.status === 'fulfilled', status === 'cancelled');
    assert.deepEqual(ends, [status === 'cancelled' ? 'run.cancel:cancelled' : 'run.end:succeeded']);
  });

  it('dead-letters a run that has had its agent’s attempts, without starting it again', async () => {
    await using harness = await createKernelHarness();
    const { manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      maxAttempts: 1,
    });
    const run = await submit();
    await dispatchedCount(1);
    // Its worker crashed: the run goes back in the queue, and has no attempt left.
    await manager.interrupted([run.id], workerKilled(run.id));
    await until(
      async () => (await harness.storage.runs.get(run.id))?.status === 'dead-lettered',
      'the run is dead-lettered',
    );
    const stored = await harness.storage.runs.get(run.id);
    assert.deepEqual([stored?.status, stored?.attempts], ['dead-lettered', 1]);
    assert.equal(dispatched.length, 1, 'not handed to a worker again');
    assert.deepEqual(await auditKinds(harness, run.id), [
      'run.submit:pending',
      'run.dead-letter:dead-lettered',
    ]);
  });

  describe('a run out of attempts, with a journal', () => {
    /**
     * A run of an agent allowed one attempt, whose first worker journaled a `clock.now` call
     * and then crashed: the run has used its attempt.
     */
    async function outOfAttempts(harness: KernelHarness) {
      const made = await createManager(harness, { maxAttempts: 1 });
      const run = await made.submit();
      await made.dispatchedCount(1);
      await harness.storage.runs.appendJournal({
        runId: run.id,
        seq: 1,
        kind: 'clock.now',
        intentDigest: parseIntent({ kind: 'clock.now' }, 1024).digest,
        outcome: 'ok',
        result: 1_767_225_600_000,
        recordedAt: Date.now(),
      });
      await made.manager.interrupted([run.id], workerKilled(run.id));
      const at = (seq: number) => ({ agentId: made.agent.id, runId: run.id, seq });
      return { ...made, run, at };
    }

    it('is replayed once from its journal, and ends as its program reports', async () => {
      await using harness = await createKernelHarness();
      const { manager, dispatched, dispatchedCount, started, run, at } =
        await outOfAttempts(harness);
      await dispatchedCount(2);
      assert.deepEqual(
        [dispatched[1]?.id, dispatched[1]?.status, dispatched[1]?.attempts],
        [run.id, 'running', 1],
        'shown running, and no attempt taken',
      );
      assert.equal(started.length, 1, 'not counted as an attempt');
      assert.equal(await harness.kernel.gate.call(at(1), { kind: 'clock.now' }), 1_767_225_600_000);
      await manager.finished(run.id, { ok: true, result: 'finished before the crash' });
      const stored = await harness.storage.runs.get(run.id);
      assert.deepEqual(
        [stored?.status, stored?.attempts, stored?.result],
        ['succeeded', 1, 'finished before the crash'],
      );
      assert.deepEqual(await auditKinds(harness, run.id), [
        'run.submit:pending',
        'run.end:succeeded',
      ]);
    });

    it('is dead-lettered if its last replay asks for a call its journal does not hold', async () => {
      await using harness = await createKernelHarness();
      const { manager, dispatchedCount, run, at } = await outOfAttempts(harness);
      await dispatchedCount(2);
      await harness.kernel.gate.call(at(1), { kind: 'clock.now' });
      await rejectsWithCode(
        harness.kernel.gate.call(at(2), { kind: 'clock.now' }),
        'KEEL_RUN_ATTEMPTS_EXHAUSTED',
      );
      // Its program made do without the call and reported success: the run is dead-lettered
      // all the same, since no attempt of it finished.
      await manager.finished(run.id, { ok: true, result: 'made do' });
      const stored = await harness.storage.runs.get(run.id);
      assert.deepEqual([stored?.status, stored?.result], ['dead-lettered', null]);
      assert.equal((await harness.storage.runs.listJournal(run.id)).length, 1);
      assert.deepEqual(await auditKinds(harness, run.id), [
        'run.submit:pending',
        'syscall.deny:denied',
        'run.dead-letter:dead-lettered',
      ]);
    });

    it('is dead-lettered if it ends with a new call on its way, or waiting for an approval', async () => {
      await using harness = await createKernelHarness();
      const hasty = await outOfAttempts(harness);
      await hasty.dispatchedCount(2);
      // The program sent a call and returned without waiting for it.
      const late = harness.kernel.gate.call(hasty.at(2), { kind: 'clock.now' });
      await hasty.manager.finished(hasty.run.id, { ok: true, result: 'did not wait' });
      // Refused as a call past the journal, or (here, with no record cache) of an ended run.
      await assert.rejects(late, (error: Error & { code?: string }) =>
        ['KEEL_RUN_ATTEMPTS_EXHAUSTED', 'KEEL_IDENTITY_UNKNOWN'].includes(error.code ?? ''),
      );
      assert.equal((await harness.storage.runs.get(hasty.run.id))?.status, 'dead-lettered');
      assert.equal((await harness.storage.runs.listJournal(hasty.run.id)).length, 1);

      const waiting = await outOfAttempts(harness);
      await waiting.dispatchedCount(2);
      await waiting.manager.finished(waiting.run.id, approvalRequired('apr_1'));
      const stored = await harness.storage.runs.get(waiting.run.id);
      assert.deepEqual([stored?.status, stored?.attempts], ['dead-lettered', 1]);
    });

    it('is dead-lettered, not replayed again, if its worker crashes on its last replay', async () => {
      await using harness = await createKernelHarness();
      const { manager, dispatched, dispatchedCount, run } = await outOfAttempts(harness);
      await dispatchedCount(2);
      await manager.interrupted([run.id], workerKilled(run.id));
      await until(
        async () => (await harness.storage.runs.get(run.id))?.status === 'dead-lettered',
        'the run is dead-lettered',
      );
      assert.equal(dispatched.length, 2, 'not handed to a worker a third time');
      assert.deepEqual(await auditKinds(harness, run.id), [
        'run.submit:pending',
        'run.dead-letter:dead-lettered',
      ]);
    });
  });

  it('queues every run left pending at boot, and resumes every suspended one, past a page', async () => {
    await using harness = await createKernelHarness();
    const { agent, manager } = await createManager(harness);
    const now = Date.now();
    // More than a page (1,000) of each.
    for (let index = 0; index < 2_010; index += 1) {
      const run = await harness.storage.runs.create({
        id: createId('run'),
        agentId: agent.id,
        task: {},
        now: now + index,
      });
      if (index % 2 === 1) await harness.storage.runs.updateStatus(run.id, 'suspended', now);
    }
    assert.equal(await manager.recover(), 1_005);
    manager.setAvailable(agent.id, false);
    await manager.resumeSuspended(agent.id);
    assert.equal(manager.pendingCount + manager.activeCount, 2_010);
    manager.close();
  });

  it('starts the runs it takes off the queue together: one slow to reach storage holds up no other', async () => {
    const { promise: slowStartMayFinish, resolve: finishSlowStart } = Promise.withResolvers<void>();
    let slowRunId: string | undefined;
    let attemptsCounted = 0;
    await using harness = await createKernelHarness();
    const { manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      runs: (stored) => ({
        ...stored,
        startAttempt: async (id, now, maxAttempts) => {
          attemptsCounted += 1;
          slowRunId ??= id;
          const started = await stored.startAttempt(id, now, maxAttempts);
          if (id === slowRunId) await slowStartMayFinish;
          return started;
        },
      }),
    });
    const runs = await Promise.all([submit(), submit(), submit()]);
    // The first run's start waits in storage; the other two reach their workers meanwhile.
    await dispatchedCount(2);
    assert.equal(attemptsCounted, 3);
    assert.ok(slowRunId !== undefined);
    assert.ok(!dispatched.some((run) => run.id === slowRunId));
    finishSlowStart();
    await dispatchedCount(3);
    assert.deepEqual(dispatched.map((run) => run.id).sort(), runs.map((run) => run.id).sort());
    await manager.finished(slowRunId, { ok: true, result: 'done' });
  });

  it('looks for an agent’s suspended runs again when storage fails to list them', async () => {
    await using harness = await createKernelHarness();
    const { agent, manager, dispatchedCount } = await createManager(harness, {
      runs: (stored) => ({ ...stored, list: failing((filter) => stored.list(filter)) }),
    });
    const run = await harness.storage.runs.create({
      id: createId('run'),
      agentId: agent.id,
      task: {},
      now: Date.now(),
    });
    await harness.storage.runs.updateStatus(run.id, 'suspended', Date.now());
    // The agent started: that is not undone by the failed listing, which is tried again.
    await manager.resumeSuspended(agent.id);
    await dispatchedCount(1);
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
  });

  it('does not bring back a run cancelled while its worker crashed, whichever is seen first', async () => {
    await using harness = await createKernelHarness();
    const { manager, dispatched, submit, dispatchedCount } = await createManager(harness);
    const crashed = (runId: string) => manager.interrupted([runId], workerKilled(runId));
    const cancelFirst = await submit();
    await dispatchedCount(1);
    await Promise.all([
      manager.cancel(cancelFirst.id, 'operator:ana', 'stop it'),
      crashed(cancelFirst.id),
    ]);
    const crashFirst = await submit();
    await dispatchedCount(2);
    await Promise.all([
      crashed(crashFirst.id),
      manager.cancel(crashFirst.id, 'operator:ana', 'stop it'),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const run of [cancelFirst, crashFirst]) {
      assert.equal((await harness.storage.runs.get(run.id))?.status, 'cancelled');
    }
    assert.equal(dispatched.length, 2, 'neither is handed to a worker again');
  });

  it('does not hand a worker a run cancelled while its attempt was being counted', async () => {
    await using harness = await createKernelHarness();
    const { manager, dispatched, started, submit, dispatchedCount } = await createManager(harness);
    const run = await submit();
    await dispatchedCount(1);
    // Its worker crashed: the run is queued again, and its next attempt is on its way to
    // storage when the operator's cancel follows it into the same transaction.
    await manager.interrupted([run.id], workerKilled(run.id));
    await manager.cancel(run.id, 'operator:ana', 'stop it');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'cancelled');
    assert.equal(dispatched.length, 1, 'the cancelled run is not handed to its worker');
    assert.equal(started.length, 1, 'nor is its record kept for its calls');
    assert.equal(manager.activeCount, 0);
  });

  it('keeps a queued run in the queue when its cancel cannot be stored', async () => {
    await using harness = await createKernelHarness();
    const { agent, manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      runs: (stored) => ({ ...stored, end: failing((...parameters) => stored.end(...parameters)) }),
    });
    manager.setAvailable(agent.id, false);
    const run = await submit();
    await rejectsWithCode(
      manager.cancel(run.id, 'operator:ana', 'stop it'),
      'KEEL_STORAGE_UNAVAILABLE',
    );
    assert.equal(manager.pendingCount, 1, 'still queued');
    manager.setAvailable(agent.id, true);
    await dispatchedCount(1);
    assert.equal(dispatched[0]?.id, run.id);
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
  });

  it('does not run a run whose submission could not be audited', async () => {
    await using harness = await createKernelHarness({
      replaceStores: auditFailingFor('run.submit'),
    });
    const { agent, manager, dispatched } = await createManager(harness);
    await rejectsWithCode(
      manager.submit({ agentId: agent.id, task: {}, origin: 'test', actor: 'operator:test' }),
      'KEEL_STORAGE_UNAVAILABLE',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const [run] = await harness.storage.runs.list({ agentId: agent.id });
    assert.equal(run?.status, 'cancelled');
    assert.equal(dispatched.length, 0, 'never handed to a worker');
  });

  it('queues a suspended run once when its approval is decided as its agent starts', async () => {
    // The agent's start lists the suspended runs; the approval's decision resumes the run and
    // it is on its worker again before that list is acted on.
    let listed: () => void = () => undefined;
    const decidedFirst = new Promise<void>((resolve) => {
      listed = resolve;
    });
    await using harness = await createKernelHarness();
    const { agent, manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      runs: (stored) => ({
        ...stored,
        list: async (filter) => {
          const runs = await stored.list(filter);
          if (filter?.status === 'suspended') await decidedFirst;
          return runs;
        },
      }),
    });
    const run = await submit();
    await dispatchedCount(1);
    await manager.finished(run.id, approvalRequired('apr_1'));
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'suspended');
    const agentStarted = manager.resumeSuspended(agent.id);
    await manager.approvalDecided(run.id);
    await dispatchedCount(2);
    listed();
    await agentStarted;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stored = await harness.storage.runs.get(run.id);
    assert.deepEqual([stored?.status, stored?.attempts], ['running', 1], 'left on its worker');
    assert.equal(dispatched.length, 2);
    // A decision for a run that is running again changes nothing either.
    await manager.approvalDecided(run.id);
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
  });

  it('resumes a run whose approval was decided before the run was suspended', async () => {
    await using harness = await createKernelHarness();
    const pending = new Set(['apr_waiting']);
    const { manager, submit, dispatchedCount } = await createManager(harness, {
      approvalPending: async (approvalId) => pending.has(approvalId),
    });
    const decided = await submit();
    await dispatchedCount(1);
    // The approver was quick: the decision arrives while the worker's report is on its way.
    await manager.approvalDecided(decided.id);
    await manager.finished(decided.id, approvalRequired('apr_decided'));
    await dispatchedCount(2);
    assert.equal((await harness.storage.runs.get(decided.id))?.status, 'running');

    // Still waiting: the run stays suspended until the decision comes.
    const waiting = await submit();
    await dispatchedCount(3);
    await manager.finished(waiting.id, approvalRequired('apr_waiting'));
    assert.equal((await harness.storage.runs.get(waiting.id))?.status, 'suspended');
    pending.delete('apr_waiting');
    await manager.approvalDecided(waiting.id);
    await dispatchedCount(4);
    assert.deepEqual(await auditKinds(harness, decided.id), [
      'run.submit:pending',
      'run.suspend:suspended',
    ]);
  });

  it('starts a run storage failed to start later, without holding up the others', async () => {
    await using harness = await createKernelHarness();
    const { manager, dispatched, submit } = await createManager(harness, {
      runs: (stored) => ({ ...stored, startAttempt: failing(stored.startAttempt) }),
    });
    const first = await submit();
    const second = await submit();
    await until(() => dispatched.length === 2, 'both runs are on a worker');
    assert.deepEqual(
      dispatched.map((run) => run.id),
      [second.id, first.id],
      'the second went first; the first followed once storage answered',
    );
    assert.equal(manager.activeCount, 2, 'no slot is held by the failed start');
    assert.equal((await harness.storage.runs.get(first.id))?.attempts, 1);
  });

  it('records an end storage failed to record, without running the run again', async () => {
    await using harness = await createKernelHarness();
    // Its last attempt: running it again would dead-letter it and lose its result.
    const { manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      maxAttempts: 1,
      runs: (stored) => ({ ...stored, end: failing(stored.end, 2) }),
    });
    const run = await submit();
    await dispatchedCount(1);
    await manager.finished(run.id, { ok: true, result: 'first' });
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
    await until(
      async () => (await harness.storage.runs.get(run.id))?.status === 'succeeded',
      'the end is on record',
    );
    const stored = await harness.storage.runs.get(run.id);
    assert.deepEqual([stored?.result, stored?.attempts], ['first', 1]);
    assert.equal(dispatched.length, 1, 'not run again');
    assert.deepEqual(await auditKinds(harness, run.id), [
      'run.submit:pending',
      'run.end:succeeded',
    ]);
    assert.equal(manager.activeCount, 0);
  });

  it('resumes a suspended run whose approval check or requeue storage failed', async () => {
    await using harness = await createKernelHarness();
    let checks = 0;
    const { manager, submit, dispatchedCount } = await createManager(harness, {
      approvalPending: async () => {
        checks += 1;
        if (checks === 1) throw new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy');
        return false;
      },
      runs: (stored) => ({ ...stored, requeueSuspended: failing(stored.requeueSuspended) }),
    });
    const run = await submit();
    await dispatchedCount(1);
    // Decided early; the check after the suspension fails, then the requeue does.
    await manager.finished(run.id, approvalRequired('apr_decided'));
    await dispatchedCount(2);
    assert.equal(checks, 2);
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');

    // A decision whose requeue fails once is tried again too.
    const later = await createManager(harness, {
      approvalPending: async () => true,
      runs: (stored) => ({ ...stored, requeueSuspended: failing(stored.requeueSuspended) }),
    });
    const waiting = await later.submit();
    await later.dispatchedCount(1);
    await later.manager.finished(waiting.id, approvalRequired('apr_waiting'));
    assert.equal((await harness.storage.runs.get(waiting.id))?.status, 'suspended');
    await later.manager.approvalDecided(waiting.id);
    await later.dispatchedCount(2);
  });

  it('waits longer each time storage fails a run again, and starts it once it answers', async () => {
    await using harness = await createKernelHarness();
    const recorded = recordingLogger('error');
    const { agent, manager, dispatched, submit } = await createManager(harness, {
      logger: recorded.logger,
      runs: (stored) => ({
        ...stored,
        startAttempt: (id, ...rest) =>
          id === failOn ? failingStart(id, ...rest) : stored.startAttempt(id, ...rest),
      }),
    });
    // Three runs ready at once; storage fails the first one's start three times.
    let failOn = '';
    let left = 3;
    const failingStart: RunStore['startAttempt'] = async (id, ...rest) => {
      if (left > 0) {
        left -= 1;
        throw new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy');
      }
      return harness.storage.runs.startAttempt(id, ...rest);
    };
    manager.setAvailable(agent.id, false);
    const runs = [await submit(), await submit(), await submit()];
    failOn = runs[0]?.id ?? '';
    manager.setAvailable(agent.id, true);
    await until(() => dispatched.length === 3, 'all three runs are on a worker');
    assert.deepEqual(
      dispatched.map((run) => run.id),
      [runs[1]?.id, runs[2]?.id, runs[0]?.id],
    );
    assert.equal(manager.activeCount, 3, 'no slot held by the failed starts');
    assert.deepEqual(
      recorded.lines
        .map(
          (line) => JSON.parse(line) as { retryInMs?: number; failures?: number; runId?: string },
        )
        .filter((line) => line.runId === failOn)
        .map((line) => [line.failures, line.retryInMs]),
      [
        [1, 20],
        [2, 40],
        [3, 80],
      ],
    );
  });

  it('requeues each run of a crashed worker even when storage fails for one of them', async () => {
    let failOnce = true;
    let failFor = '';
    await using harness = await createKernelHarness();
    const { manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      runs: (stored) => ({
        ...stored,
        get: (id) => {
          if (failOnce && id === failFor) {
            failOnce = false;
            return Promise.reject(new KeelError('KEEL_STORAGE_UNAVAILABLE', 'disk busy'));
          }
          return stored.get(id);
        },
      }),
    });
    const first = await submit();
    const second = await submit();
    await dispatchedCount(2);
    failFor = first.id;
    await manager.interrupted([first.id, second.id], {
      ...workerKilled(first.id),
      runs: [first.id, second.id],
    });
    await until(() => dispatched.length === 4, 'both runs are on a worker again');
    assert.deepEqual(
      dispatched
        .slice(2)
        .map((run) => run.id)
        .sort(),
      [first.id, second.id].sort(),
    );
  });

  it('suspends a run its stopped agent left when storage answers, and requeues it if the agent is back', async () => {
    await using harness = await createKernelHarness();
    const { agent, manager, dispatched, submit, dispatchedCount } = await createManager(harness, {
      runs: (stored) => ({
        ...stored,
        updateStatus: failingSuspension(stored.updateStatus),
      }),
    });
    const run = await submit();
    await dispatchedCount(1);
    // The operator stops the agent; storage fails to suspend its run.
    manager.setAvailable(agent.id, false);
    await manager.interrupted([run.id], { ...workerKilled(run.id), expected: true });
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
    // The agent starts again before storage answers: its start finds nothing suspended.
    manager.setAvailable(agent.id, true);
    await manager.resumeSuspended(agent.id);
    await dispatchedCount(2);
    assert.equal(dispatched[1]?.id, run.id);
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
  });

  it('keeps the step that waits when a decision’s requeue fails as well', async () => {
    await using harness = await createKernelHarness();
    const { manager, submit, dispatchedCount } = await createManager(harness, {
      approvalPending: async () => false,
      runs: (stored) => ({
        ...stored,
        updateStatus: failingSuspension(stored.updateStatus),
        requeueSuspended: failing(stored.requeueSuspended),
      }),
    });
    const run = await submit();
    await dispatchedCount(1);
    // Its suspension fails and waits; the approver decides, and that requeue fails too.
    await manager.finished(run.id, approvalRequired('apr_1'));
    await manager.approvalDecided(run.id);
    // The suspension, tried again, asks after the approval and requeues the run.
    await dispatchedCount(2);
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'running');
  });

  it('answers a cancel that took effect even when its audit entry could not be written', async () => {
    await using harness = await createKernelHarness({
      replaceStores: auditFailingFor('run.cancel'),
    });
    const { manager, submit, dispatchedCount } = await createManager(harness);
    const run = await submit();
    await dispatchedCount(1);
    const cancelled = await manager.cancel(run.id, 'operator:ana', 'not needed');
    assert.equal(cancelled.status, 'cancelled');
    assert.equal((await harness.storage.runs.get(run.id))?.status, 'cancelled');
    assert.equal(manager.activeCount, 0);
  });
});
