import type { AuditLog } from '../../kernel/audit/audit-log.ts';
import type { BudgetLedger } from '../../kernel/budgets/budget-ledger.ts';
import type { EventBus } from '../../platform/bus/event-bus.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import {
  type JsonObject,
  type JsonValue,
  jsonFits,
  MAX_STORED_JSON_BYTES,
  storableError,
} from '../../platform/storage/ports/json-value.ts';
import {
  type AttemptStart,
  FINAL_RUN_STATUSES,
  forEachRun,
  type RunEnd,
  type RunRecord,
  type RunStatus,
  type RunStore,
} from '../../platform/storage/ports/run-store.ts';
import { checkRunPriority, FairRunQueue, type QueuedRun } from '../scheduler/fair-run-queue.ts';
import type { RunOutcome, StepEvent, WorkerExit } from '../worker/agent-worker.ts';
import { RUN_STATUS, RUN_STEPS } from './run-topics.ts';

/** What the run manager needs to know about an agent to schedule its runs. */
export interface SchedulableAgent {
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly runBudget: Partial<BudgetAmounts> | undefined;
}

export interface RunManagerOptions {
  readonly runs: RunStore;
  readonly budgets: BudgetLedger;
  readonly audit: AuditLog;
  readonly bus: EventBus;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly actor: string;
  readonly maxConcurrent: number;
  readonly agent: (agentId: string) => SchedulableAgent | undefined;
  /**
   * An attempt of a run is about to be dispatched: the run as storage answered it and its
   * journal's head, which the gate would otherwise read at the run's first call.
   */
  readonly attemptStarted?: (run: RunRecord, journalHead: number) => void;
  /**
   * A run that has used all its attempts, and has a journal, is about to be replayed once more,
   * only from its journal: it may have finished before a crash kept its end off the record.
   * Without this option such a run is dead-lettered at once.
   */
  readonly lastReplayStarted?: (run: RunRecord, journalHead: number) => void;
  /**
   * A run's last replay is over: whether it asked for a call its journal does not hold
   * (`undefined` if it was not on its last replay).
   */
  readonly lastReplayEnded?: (runId: string) => boolean | undefined;
  /**
   * Whether an approval is still waiting for a decision. A run that stopped at a call needing
   * one asks after it has been suspended: a decision taken meanwhile found the run still
   * running, and resumed nothing.
   */
  readonly approvalPending?: (approvalId: string) => Promise<boolean>;
  /** A run has ended: whatever was kept about it for its calls is stale. */
  readonly runEnded?: (runId: string) => void;
  /**
   * How long a run waits before it is queued again when storage failed while it was between
   * states (default 1 s, doubling up to 30 s while storage keeps failing).
   */
  readonly retryDelayMs?: number;
  /** Hands a run to the agent's worker; throws when the agent cannot take it now. */
  readonly dispatch: (run: RunRecord) => void;
  readonly cancelInWorker: (agentId: string, runId: string, reason: string) => void;
}

const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

export interface SubmitRun {
  readonly agentId: string;
  readonly task: JsonObject;
  readonly priority?: number;
  readonly origin: string;
  readonly actor: string;
}

/**
 * Runs from submission to their end: persists them, queues them fairly (priority, then agents
 * in turn, under global and per-agent caps), hands them to agent workers, requeues the runs a
 * crashed worker was running (they resume by replay), dead-letters a run that keeps failing
 * past its agent's `maxAttempts`, and publishes each step and status change on the bus.
 *
 * @example
 * ```ts
 * const run = await runs.submit({ agentId, task: { prompt: 'hi' }, origin: 'cli', actor: 'operator:local' });
 * ```
 */
export class RunManager {
  readonly #options: RunManagerOptions;
  readonly #queue: FairRunQueue;
  #closing = false;
  /**
   * Submissions whose run or audit entry is not yet durable, and whether both became so: their
   * runs are not dispatched before, nor at all if not.
   */
  readonly #submitting = new Map<string, Promise<boolean>>();
  /** Runs whose attempt is being counted; a cancel meanwhile is noted in `#cancelledWhileStarting`. */
  readonly #starting = new Set<string>();
  readonly #cancelledWhileStarting = new Set<string>();
  /** A step of a run to try again once storage answers, and how often it failed (`#retry`). */
  readonly #retries = new Map<string, NodeJS.Timeout>();
  readonly #failures = new Map<string, number>();
  /** Runs given their last replay by this node (one each, see `lastReplayStarted`). */
  readonly #lastReplayed = new Set<string>();

  constructor(options: RunManagerOptions) {
    this.#options = options;
    this.#queue = new FairRunQueue({
      maxConcurrent: options.maxConcurrent,
      maxPerAgent: (agentId) => options.agent(agentId)?.concurrency ?? 1,
    });
  }

  get pendingCount(): number {
    return this.#queue.pendingCount;
  }

  get activeCount(): number {
    return this.#queue.activeCount;
  }

  async submit(request: SubmitRun): Promise<RunRecord> {
    const agent = this.#options.agent(request.agentId);
    if (agent === undefined) {
      throw new KeelError('KEEL_NOT_FOUND', `agent ${request.agentId} is not deployed`);
    }
    const priority = request.priority ?? 5;
    // Checked before anything is stored: the queue would refuse it once the run is.
    checkRunPriority(priority);
    const { clock, runs } = this.#options;
    const now = clock.now();
    const submitted: RunRecord = {
      id: createId('run'),
      agentId: request.agentId,
      status: 'pending',
      task: request.task,
      result: null,
      error: null,
      priority,
      attempts: 0,
      origin: request.origin,
      createdAt: now,
      updatedAt: now,
    };
    const runId = submitted.id;
    if (agent.runBudget !== undefined) {
      // The run's limits are in place before it exists: its first call meets them.
      const scope = `run:${runId}` as const;
      await this.#options.budgets.setLimits(scope, agent.runBudget, request.actor);
      await this.#options.budgets.inherit(scope, `agent:${request.agentId}`, request.actor);
    }
    // The run, its submission's audit entry and, when it may start at once, its first attempt
    // are asked for in one turn, so they commit in one transaction (unless the audit log must
    // first read its head again, after a failed append): the run's first step waits for one
    // commit, not three. Nothing is dispatched, and the caller is not answered, before the run
    // and its entry are both durable (see #start). A run storage refuses leaves its budget's
    // limits behind, unused, on the record with the refusal.
    const created = runs.create({
      id: runId,
      agentId: submitted.agentId,
      task: submitted.task,
      now,
      priority: submitted.priority,
      origin: submitted.origin,
    });
    const audited = this.#options.audit.record({
      kind: 'run.submit',
      actor: request.actor,
      agentId: submitted.agentId,
      runId,
      subject: runId,
      outcome: 'pending',
      data: { origin: submitted.origin, priority: submitted.priority },
    });
    this.#submitting.set(
      runId,
      Promise.all([created, audited]).then(
        () => true,
        () => false,
      ),
    );
    this.#enqueue(submitted);
    this.pump();
    let run: RunRecord;
    try {
      run = await created;
    } catch (error) {
      // Never stored, so never started (its start finds no run): only its entry may remain.
      this.#release(runId);
      this.#submitting.delete(runId);
      await this.#auditUnstored(submitted, request.actor, audited, error);
      throw error;
    }
    const published = this.#publish(run);
    // Awaited below, or dropped with the submission: never an unhandled rejection.
    published.catch(() => undefined);
    try {
      await audited;
    } catch (error) {
      // A run whose submission is not on the record does not run: its start waits for the
      // entry (see #start), and the run ends here.
      await this.cancel(runId, this.#options.actor, 'its submission could not be audited').catch(
        (failure: unknown) =>
          this.#options.logger.error(
            { err: toKeelError(failure), runId },
            'a run whose submission could not be audited could not be cancelled either; it stays queued',
          ),
      );
      throw error;
    } finally {
      this.#submitting.delete(runId);
    }
    await published;
    return run;
  }

  /**
   * A submission whose run storage refused (its transaction committed without it) left its
   * entry on the record: a second entry says that it failed.
   */
  async #auditUnstored(
    run: RunRecord,
    actor: string,
    audited: Promise<unknown>,
    failure: unknown,
  ): Promise<void> {
    const onRecord = await audited.then(
      () => true,
      () => false,
    );
    if (!onRecord) return;
    await this.#options.audit
      .record({
        kind: 'run.submit',
        actor,
        agentId: run.agentId,
        runId: run.id,
        subject: run.id,
        outcome: 'failed',
        code: toKeelError(failure).code,
      })
      .catch((error: unknown) =>
        this.#options.logger.error(
          { err: toKeelError(error), runId: run.id },
          'a submission storage refused could not be audited as failed',
        ),
      );
  }

  /** At boot: queues every run a previous process left pending or running. */
  async recover(): Promise<number> {
    const { runs } = this.#options;
    const queued = await forEachRun(runs, { statuses: ['pending', 'running'] }, (run) =>
      this.#enqueue(run),
    );
    // A decision taken while the node was down reached no one: the runs that waited for one
    // replay up to their call, which runs, is refused, or suspends them again.
    await forEachRun(runs, { status: 'suspended' }, async (run) => {
      const code = (run.error as { code?: unknown } | null)?.code;
      if (code === 'KEEL_APPROVAL_REQUIRED') await this.approvalDecided(run.id);
    });
    this.pump();
    return queued;
  }

  /**
   * An agent started: its suspended runs go back in the queue, all of them, page by page. If
   * storage fails to list them, that is tried again later as a step of its own (keyed
   * `agent:<id>`), not reported to the caller: the agent did start.
   */
  async resumeSuspended(agentId: string): Promise<void> {
    try {
      await forEachRun(this.#options.runs, { agentId, status: 'suspended' }, (run) =>
        this.#requeue(run.id),
      );
      this.#succeeded(`agent:${agentId}`);
    } catch (error) {
      // The agent has started all the same: its runs are looked for again after a pause (a
      // run queued already is left as it is).
      this.#retry(`agent:${agentId}`, 'resume suspended runs', error, () =>
        this.resumeSuspended(agentId),
      );
    } finally {
      this.pump();
    }
  }

  /**
   * Queues a suspended run again. Storage moves it only if it is still suspended, so of two
   * paths resuming one run (its approval decided, its agent started) one queues it, and a
   * run already running again is left on its worker. Tried again later if storage fails.
   */
  async #requeue(runId: string): Promise<void> {
    let moved: RunRecord | undefined;
    try {
      const { requeued, run } = await this.#options.runs.requeueSuspended(
        runId,
        this.#options.clock.now(),
      );
      this.#succeeded(runId);
      if (!requeued) return;
      moved = run;
    } catch (error) {
      this.#retry(runId, 'requeue', error, async () => {
        await this.#requeue(runId);
        this.pump();
      });
      return;
    }
    this.#enqueue(moved);
    await this.#told(moved);
  }

  setAvailable(agentId: string, available: boolean): void {
    if (available) {
      this.#queue.resume(agentId);
      this.pump();
    } else {
      this.#queue.pause(agentId);
    }
  }

  step(agentId: string, event: StepEvent): void {
    void this.#options.bus
      .publish(RUN_STEPS, { ...event, agentId, at: this.#options.clock.now() })
      .catch((error: unknown) =>
        this.#options.logger.debug({ err: error }, 'could not publish a run step'),
      );
  }

  /**
   * A worker reported a run's end. If storage cannot record it, recording it is tried again
   * (the run stays `running` meanwhile; a node restarted before then resumes it by replay, as
   * after a crash, which takes an attempt).
   */
  async finished(runId: string, outcome: RunOutcome): Promise<void> {
    this.#release(runId);
    // A last replay that asked for a new call (or one unlike its journal's) is dead-lettered
    // whatever the program made of the refusal, and so is one that stopped to wait for an
    // approval (it has no attempt to wait with); any other ends as its program reported, as
    // it would have before.
    const lastReplay = this.#options.lastReplayEnded?.(runId);
    const deadLetter =
      lastReplay === true ||
      (lastReplay === false && !outcome.ok && outcome.error.code === 'KEEL_APPROVAL_REQUIRED');
    try {
      if (deadLetter) await this.#deadLetterAfterReplay(runId);
      else await this.#recordEnd(runId, storableOutcome(outcome));
    } finally {
      this.pump();
    }
  }

  async #deadLetterAfterReplay(runId: string): Promise<void> {
    const { runs, clock } = this.#options;
    let end: RunEnd;
    try {
      end = await runs.end(runId, 'dead-lettered', clock.now());
      this.#succeeded(runId);
    } catch (error) {
      this.#retry(runId, 'end', error, () => this.#deadLetterAfterReplay(runId));
      return;
    }
    await this.#deadLettered(end);
  }

  async #recordEnd(runId: string, outcome: RunOutcome): Promise<void> {
    if (!outcome.ok && outcome.error.code === 'KEEL_APPROVAL_REQUIRED') {
      await this.#awaitApproval(runId, outcome.error);
      return;
    }
    let end: RunEnd | undefined;
    try {
      end = await this.#end(runId, outcome);
      this.#succeeded(runId);
    } catch (error) {
      this.#retry(runId, 'end', error, () => this.#recordEnd(runId, outcome));
      return;
    }
    // Ended already (an operator cancelled it first), or removed: that end stands, and was told.
    if (end === undefined || !end.ended) {
      this.#forgetRetries(runId);
      return;
    }
    this.#options.runEnded?.(runId);
    this.#forgetRetries(runId);
    const updated = end.run;
    // The end is on record: from here a failure is told, and nothing is tried again.
    await this.#told(
      updated,
      this.#options.audit.record({
        kind: 'run.end',
        actor: `agent:${updated.agentId}`,
        agentId: updated.agentId,
        runId,
        subject: runId,
        outcome: updated.status,
        code: outcome.ok ? null : outcome.error.code,
        data: { attempts: updated.attempts },
      }),
    );
  }

  /** Stores a worker's end of a run; `undefined` for a run removed meanwhile. */
  async #end(runId: string, outcome: RunOutcome): Promise<RunEnd | undefined> {
    const { runs, clock } = this.#options;
    return await (outcome.ok
      ? runs.end(runId, 'succeeded', clock.now(), outcome.result)
      : runs.end(
          runId,
          outcome.error.code === 'KEEL_RUN_CANCELLED' ? 'cancelled' : 'failed',
          clock.now(),
          undefined,
          outcome.error.toJSON() as unknown as JsonValue,
        )
    ).catch((error: unknown) => {
      // A run removed meanwhile has nobody left to tell.
      if (toKeelError(error).code === 'KEEL_NOT_FOUND') return undefined;
      throw error;
    });
  }

  /**
   * After a run's change of state is on record: audits it (when `audited` is given) and
   * publishes its status. A failure here is logged; the change stands and is not tried again.
   */
  async #told(run: RunRecord, audited?: Promise<unknown>): Promise<void> {
    try {
      await audited;
      await this.#publish(run);
    } catch (error) {
      this.#options.logger.error(
        { err: toKeelError(error), runId: run.id, status: run.status },
        "a run's change of state is on record, but could not be audited or published",
      );
    }
  }

  /**
   * A run stopped at a call that needs a human: it waits, suspended, with the approval's id in
   * its error, and resumes by replay when the approval is decided (see {@link approvalDecided}).
   * Waiting does not count as a failed attempt.
   */
  async #awaitApproval(runId: string, error: KeelError): Promise<void> {
    const { runs, clock } = this.#options;
    let updated: RunRecord;
    try {
      // Gives back the attempt of a run still `running`, then suspends it: tried again as a
      // whole, neither changes a run that has moved on.
      await runs.returnAttempt(runId, clock.now());
      updated = await runs.updateStatus(
        runId,
        'suspended',
        clock.now(),
        error.toJSON() as unknown as JsonValue,
      );
      this.#succeeded(runId);
    } catch (failure) {
      this.#retry(runId, 'suspend', failure, () => this.#awaitApproval(runId, error));
      return;
    }
    // Cancelled while its worker was reaching the call: it stays cancelled.
    if (hasEnded(updated)) return;
    const approvalId = (error.details.approvalId as string | undefined) ?? null;
    await this.#told(
      updated,
      this.#options.audit.record({
        kind: 'run.suspend',
        actor: `agent:${updated.agentId}`,
        agentId: updated.agentId,
        runId,
        subject: runId,
        outcome: 'suspended',
        code: error.code,
        data: { approvalId },
      }),
    );
    if (approvalId !== null) await this.#resumeIfDecided(runId, approvalId);
  }

  /**
   * A decision taken while the run was still on its way to being suspended found it running,
   * and resumed nothing: asked once the run is suspended (a decision taken from then on finds
   * it suspended), and tried again if storage fails.
   */
  async #resumeIfDecided(runId: string, approvalId: string): Promise<void> {
    const { approvalPending } = this.#options;
    if (approvalPending === undefined) return;
    let pending: boolean;
    try {
      pending = await approvalPending(approvalId);
    } catch (error) {
      this.#retry(runId, 'approval check', error, () => this.#resumeIfDecided(runId, approvalId));
      return;
    }
    this.#succeeded(runId);
    if (pending) return;
    await this.#requeue(runId);
    this.pump();
  }

  /**
   * An approval was decided (approved, denied or expired): the suspended run it belongs to goes
   * back in the queue. Its replay reaches the same call, which now runs, or is refused.
   */
  async approvalDecided(runId: string): Promise<void> {
    if (this.#closing) return;
    try {
      await this.#requeue(runId);
    } finally {
      this.pump();
    }
  }

  /**
   * A worker ended with runs on it. After a crash they go back in the queue and resume by
   * replay; after an operator stopped the agent they wait, suspended, until it starts again.
   */
  async interrupted(runIds: readonly string[], exit: WorkerExit): Promise<void> {
    for (const runId of runIds) this.#release(runId);
    if (this.#closing) return;
    for (const runId of runIds) await this.#interrupt(runId, exit);
    this.pump();
  }

  /** One run of a worker that ended: suspended, or queued again (tried again if storage fails). */
  async #interrupt(runId: string, exit: WorkerExit, retried = false): Promise<void> {
    const { runs, clock } = this.#options;
    // A last replay cut short: after a crash the run is dead-lettered when it next starts; an
    // operator's stop is no failure of the run, which gets its last replay again.
    this.#options.lastReplayEnded?.(runId);
    if (exit.expected) this.#lastReplayed.delete(runId);
    let updated: RunRecord;
    try {
      updated = exit.expected
        ? await runs.updateStatus(runId, 'suspended', clock.now())
        : await runs.updateStatus(
            runId,
            'pending',
            clock.now(),
            new KeelError(
              'KEEL_WORKER_CRASHED',
              `${exit.reason}: ${exit.detail}`,
            ).toJSON() as unknown as JsonValue,
          );
      this.#succeeded(runId);
    } catch (error) {
      this.#retry(runId, 'requeue after its worker ended', error, async () => {
        await this.#interrupt(runId, exit, true);
        this.pump();
      });
      return;
    }
    // Cancelled meanwhile: it stays as it is.
    if (hasEnded(updated)) return;
    if (!exit.expected) this.#enqueue(updated);
    await this.#told(updated);
    // Suspended late, because storage failed when its agent stopped: if the agent has started
    // again meanwhile, its start did not find this run suspended, so it goes back now.
    if (exit.expected && retried && this.#available(updated.agentId)) await this.#requeue(runId);
  }

  /** Whether an agent's runs may start now (deployed, and its queue not held). */
  #available(agentId: string): boolean {
    return this.#options.agent(agentId) !== undefined && !this.#queue.isPaused(agentId);
  }

  async cancel(runId: string, actor: string, reason: string): Promise<RunRecord> {
    // Off the queue before the end is stored, so that it cannot start meanwhile; back in its
    // place if the end is not stored.
    const queued = this.#queue.pendingRun(runId);
    this.#queue.remove(runId);
    const error = new KeelError('KEEL_RUN_CANCELLED', reason);
    let end: RunEnd;
    try {
      end = await this.#options.runs.end(
        runId,
        'cancelled',
        this.#options.clock.now(),
        undefined,
        error.toJSON() as unknown as JsonValue,
      );
    } catch (failure) {
      if (queued !== undefined && this.#queue.enqueue(queued)) this.pump();
      throw failure;
    }
    const updated = end.run;
    if (!end.ended) {
      throw new KeelError('KEEL_CONFLICT', `run ${runId} has already ended (${updated.status})`);
    }
    if (this.#starting.has(runId)) this.#cancelledWhileStarting.add(runId);
    this.#options.runEnded?.(runId);
    this.#forgetRetries(runId);
    this.#options.cancelInWorker(updated.agentId, runId, reason);
    this.#release(runId);
    await this.#told(
      updated,
      this.#options.audit.record({
        kind: 'run.cancel',
        actor,
        agentId: updated.agentId,
        runId,
        subject: runId,
        outcome: 'cancelled',
        data: { reason },
      }),
    );
    this.pump();
    return updated;
  }

  /**
   * Takes runs off the queue while there is capacity, and hands them to their workers. The runs
   * start together, in the queue's order: their attempts are counted in shared transactions,
   * and none waits for the storage round trips of those ahead of it.
   */
  pump(): void {
    if (this.#closing) return;
    for (const queued of this.#queue.takeReady()) {
      this.#startQueued(queued).catch((error: unknown) =>
        this.#options.logger.error({ err: error, runId: queued.runId }, 'dispatching a run failed'),
      );
    }
  }

  close(): void {
    this.#closing = true;
    for (const timer of this.#retries.values()) clearTimeout(timer);
    this.#retries.clear();
  }

  async #startQueued(queued: QueuedRun): Promise<void> {
    try {
      await this.#start(queued.runId, queued.agentId);
    } catch (error) {
      // One run storage could not start holds up neither the others nor a slot; nothing of
      // its start is on record, so it goes back in the queue as it was.
      this.#release(queued.runId);
      this.#retry(queued.runId, 'start', error, async () => {
        this.#queue.enqueue(queued);
        this.pump();
      });
    }
    // A start that did not dispatch its run gave its slot back: another run may take it.
    this.pump();
  }

  /**
   * Storage failed to record a step of a run between states (its start, its end, its
   * suspension or its return to the queue), so nothing of that step is on record: `action`
   * takes it again after a pause (`retryDelayMs`, doubling with each failure of the run in a
   * row, up to 30 s). Each action checks the run's state as it goes, through storage, so a run
   * that ended or moved on meanwhile is left as it is, and a run removed meanwhile
   * (`KEEL_NOT_FOUND`) is forgotten. A run has one step waiting at most. (`runId` may also
   * be `agent:<id>`, for the step that resumes an agent's suspended runs.)
   */
  #retry(runId: string, step: string, error: unknown, action: () => Promise<void>): void {
    if (toKeelError(error).code === 'KEEL_NOT_FOUND') {
      // The run was removed meanwhile: nothing of it waits.
      this.#forgetRetries(runId);
      return;
    }
    const failures = (this.#failures.get(runId) ?? 0) + 1;
    this.#failures.set(runId, failures);
    const firstMs = this.#options.retryDelayMs ?? RETRY_FIRST_MS;
    const delayMs = Math.min(
      Math.max(RETRY_MAX_MS, firstMs),
      firstMs * 2 ** Math.min(failures - 1, 16),
    );
    this.#options.logger.error(
      { err: toKeelError(error), runId, step, failures, retryInMs: delayMs },
      'storage failed for a run between states; trying again',
    );
    // Another step of the run waits already: it leads to the run's requeue or end itself (a
    // suspension asks after the approval, a crash or a start queues the run), and the run's
    // state is read again then. Replacing it could leave the run with no step at all.
    if (this.#closing || this.#retries.has(runId)) return;
    const timer = setTimeout(() => {
      this.#retries.delete(runId);
      if (this.#closing) return;
      action().catch((failure: unknown) =>
        this.#options.logger.error(
          { err: toKeelError(failure), runId, step },
          'trying a run step again failed',
        ),
      );
    }, delayMs);
    timer.unref();
    this.#retries.set(runId, timer);
  }

  /** A step of the run reached storage: its next failure waits the shortest pause again. */
  #succeeded(runId: string): void {
    this.#failures.delete(runId);
  }

  /** The run ended: no step of it waits to be tried again, and nothing is kept about it. */
  #forgetRetries(runId: string): void {
    clearTimeout(this.#retries.get(runId));
    this.#retries.delete(runId);
    this.#failures.delete(runId);
    this.#lastReplayed.delete(runId);
  }

  async #start(runId: string, agentId: string): Promise<void> {
    const { runs, clock } = this.#options;
    const agent = this.#options.agent(agentId);
    if (agent === undefined) {
      this.#release(runId);
      return;
    }
    // One request reads the run, counts the attempt and reads its journal's head.
    const submitted = this.#submitting.get(runId);
    this.#starting.add(runId);
    const { lastReplayStarted } = this.#options;
    let attempt: AttemptStart | undefined;
    let lastReplay = false;
    try {
      attempt = await runs.startAttempt(runId, clock.now(), agent.maxAttempts);
      // Out of attempts, but with a journal: it may have finished before a crash kept its end
      // off the record. It is replayed once, from its journal only, and takes no attempt; it
      // shows as running meanwhile (a cancel meanwhile is noted as for any start).
      lastReplay =
        attempt.outcome === 'exhausted' &&
        lastReplayStarted !== undefined &&
        attempt.journalHead > 0 &&
        !this.#lastReplayed.has(runId);
      if (lastReplay) {
        attempt = { ...attempt, run: await runs.updateStatus(runId, 'running', clock.now()) };
      }
    } catch (error) {
      // A run removed while it waited in the queue, or whose submission failed (never stored,
      // or being cancelled by `submit`): neither is started again.
      if (toKeelError(error).code !== 'KEEL_NOT_FOUND' && (await submitted) !== false) {
        this.#starting.delete(runId);
        this.#cancelledWhileStarting.delete(runId);
        throw error;
      }
      attempt = undefined;
    }
    this.#succeeded(runId);
    // The run and its submission's entry went in the same transaction, or are on their way.
    const onRecord = await submitted;
    // A cancel that ended the run while its attempt was being counted: the run is not
    // dispatched, and its slot was freed by the cancel. From here to the dispatch nothing
    // awaits, so a later cancel finds the run on its worker.
    this.#starting.delete(runId);
    const cancelled = this.#cancelledWhileStarting.delete(runId);
    if (
      attempt === undefined ||
      attempt.outcome === 'ended' ||
      hasEnded(attempt.run) ||
      cancelled ||
      onRecord === false
    ) {
      // Removed meanwhile: nothing is kept about it.
      if (attempt === undefined) this.#forgetRetries(runId);
      this.#release(runId);
      return;
    }
    const run = attempt.run;
    if (attempt.outcome === 'exhausted' && !lastReplay) {
      // Fails as a start does (and is tried again as one): nothing of it is on record yet.
      const end = await runs.end(runId, 'dead-lettered', clock.now());
      this.#release(runId);
      await this.#deadLettered(end);
      return;
    }
    if (lastReplay) {
      this.#lastReplayed.add(runId);
      lastReplayStarted?.(run, attempt.journalHead);
    } else {
      this.#options.attemptStarted?.(run, attempt.journalHead);
    }
    try {
      this.#options.dispatch(run);
    } catch (error) {
      // The agent stopped between the queue and here: the run waits for it, and this attempt,
      // which never reached a worker, does not count towards the dead-letter list.
      this.#options.logger.debug({ err: toKeelError(error), runId }, 'run returned to the queue');
      this.#release(runId);
      this.#queue.pause(run.agentId);
      if (lastReplay) {
        // It took no attempt; it waits, and gets its last replay when it starts.
        this.#lastReplayed.delete(runId);
        this.#options.lastReplayEnded?.(runId);
        const waiting = await runs
          .updateStatus(runId, 'pending', clock.now())
          .catch((failure: unknown) => {
            // It waits all the same, shown running until it starts.
            this.#options.logger.warn(
              { err: toKeelError(failure), runId },
              'could not show a run that did not reach its worker as pending',
            );
            return run;
          });
        if (!hasEnded(waiting)) this.#enqueue(waiting);
        return;
      }
      const waiting = await runs.returnAttempt(runId, clock.now()).catch((failure: unknown) => {
        // It waits all the same; the attempt stays counted.
        this.#options.logger.warn(
          { err: toKeelError(failure), runId },
          'could not give back the attempt of a run that did not reach its worker',
        );
        return run;
      });
      this.#enqueue(waiting);
      return;
    }
    // The run is on its worker: a status nobody could be told about changes nothing of that.
    await this.#publish(run).catch((error: unknown) =>
      this.#options.logger.debug({ err: error, runId }, 'could not publish a run status'),
    );
  }

  /** A run that used all its attempts was dead-lettered (unless it had ended already). */
  async #deadLettered(end: RunEnd): Promise<void> {
    if (!end.ended) return;
    const run = end.run;
    this.#options.runEnded?.(run.id);
    this.#forgetRetries(run.id);
    this.#options.logger.warn(
      { runId: run.id, attempts: run.attempts },
      'a run failed too many times; moved to the dead-letter list',
    );
    await this.#told(
      run,
      this.#options.audit.record({
        kind: 'run.dead-letter',
        actor: this.#options.actor,
        agentId: run.agentId,
        runId: run.id,
        subject: run.id,
        outcome: 'dead-lettered',
        data: { attempts: run.attempts, lastError: run.error },
      }),
    );
  }

  #enqueue(run: RunRecord): void {
    // Queued by another path: whatever step of it was waiting to be tried again is done.
    clearTimeout(this.#retries.get(run.id));
    this.#retries.delete(run.id);
    this.#queue.enqueue({
      runId: run.id,
      agentId: run.agentId,
      priority: run.priority,
      enqueuedAt: run.createdAt,
    });
  }

  #release(runId: string): void {
    this.#queue.release(runId);
    this.#queue.remove(runId);
  }

  async #publish(run: RunRecord): Promise<void> {
    await this.#options.bus.publish(RUN_STATUS, {
      runId: run.id,
      agentId: run.agentId,
      status: run.status as RunStatus,
      attempts: run.attempts,
      result: run.result,
      error: run.error,
      at: this.#options.clock.now(),
    });
  }
}

/**
 * A worker's end of a run as storage can hold it, so that recording it is never refused for
 * what the program reported (trying again would meet the same refusal): a result larger than
 * a stored value may be fails the run, saying so; an error too large keeps its code, cut.
 */
function storableOutcome(outcome: RunOutcome): RunOutcome {
  if (!outcome.ok) return { ok: false, error: storableError(outcome.error) };
  if (jsonFits(outcome.result, MAX_STORED_JSON_BYTES)) return outcome;
  return {
    ok: false,
    error: new KeelError(
      'KEEL_PAYLOAD_TOO_LARGE',
      `the run's result could not be stored: it is larger than the ${MAX_STORED_JSON_BYTES} bytes a run keeps`,
      {
        details: { limit: MAX_STORED_JSON_BYTES },
        hint: 'return less from the run; keep larger output in a file or in memory and return where to find it',
      },
    ),
  };
}

/** Whether a run has ended (a status change that came too late leaves it as it was). */
function hasEnded(run: RunRecord): boolean {
  return FINAL_RUN_STATUSES.includes(run.status);
}
