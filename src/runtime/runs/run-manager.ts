import type { AuditLog } from '../../kernel/audit/audit-log.ts';
import type { BudgetLedger } from '../../kernel/budgets/budget-ledger.ts';
import type { EventBus } from '../../platform/bus/event-bus.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import {
  FINAL_RUN_STATUSES,
  type RunRecord,
  type RunStatus,
  type RunStore,
} from '../../platform/storage/ports/run-store.ts';
import { FairRunQueue } from '../scheduler/fair-run-queue.ts';
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
  #pumping = false;
  #pumpAgain = false;
  #closing = false;
  /** Submissions whose audit entry is not yet durable: their runs are not dispatched before. */
  readonly #submitting = new Map<string, Promise<unknown>>();
  /** Runs whose attempt is being counted; a cancel meanwhile is noted in `#cancelledWhileStarting`. */
  readonly #starting = new Set<string>();
  readonly #cancelledWhileStarting = new Set<string>();
  /** Runs to queue again once storage answers (see `#retryLater`). */
  readonly #retries = new Map<string, NodeJS.Timeout>();

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
    const { clock } = this.#options;
    const run = await this.#options.runs.create({
      id: createId('run'),
      agentId: request.agentId,
      task: request.task,
      now: clock.now(),
      priority: request.priority ?? 5,
      origin: request.origin,
    });
    if (agent.runBudget !== undefined) {
      const scope = `run:${run.id}` as const;
      await this.#options.budgets.setLimits(scope, agent.runBudget, request.actor);
      await this.#options.budgets.inherit(scope, `agent:${request.agentId}`, request.actor);
    }
    // The submission's audit entry is chained now and travels with the first storage request
    // of the run's start, in one transaction when it starts at once: the run's first step
    // waits for one commit fewer. The caller is answered once the entry is durable.
    const audited = this.#options.audit.record({
      kind: 'run.submit',
      actor: request.actor,
      agentId: run.agentId,
      runId: run.id,
      subject: run.id,
      outcome: 'pending',
      data: { origin: run.origin, priority: run.priority },
    });
    this.#submitting.set(run.id, audited);
    this.#enqueue(run);
    const published = this.#publish(run);
    // Awaited below, or dropped with the submission: never an unhandled rejection.
    published.catch(() => undefined);
    this.pump();
    try {
      await audited;
    } catch (error) {
      // A run whose submission is not on the record does not run: its start waits for the
      // entry (see #start), and the run ends here.
      await this.cancel(run.id, this.#options.actor, 'its submission could not be audited').catch(
        () => undefined,
      );
      throw error;
    } finally {
      this.#submitting.delete(run.id);
    }
    await published;
    return run;
  }

  /** At boot: queues every run a previous process left pending or running. */
  async recover(): Promise<number> {
    const runs = await this.#options.runs.list({ statuses: ['pending', 'running'], limit: 1000 });
    for (const run of runs) this.#enqueue(run);
    // A decision taken while the node was down reached no one: the runs that waited for one
    // replay up to their call, which runs, is refused, or suspends them again.
    const waiting = await this.#options.runs.list({ status: 'suspended', limit: 1000 });
    for (const run of waiting) {
      const code = (run.error as { code?: unknown } | null)?.code;
      if (code === 'KEEL_APPROVAL_REQUIRED') await this.approvalDecided(run.id);
    }
    this.pump();
    return runs.length;
  }

  /** An agent started: its suspended runs go back in the queue. */
  async resumeSuspended(agentId: string): Promise<void> {
    const runs = await this.#options.runs.list({ agentId, status: 'suspended', limit: 1000 });
    for (const run of runs) await this.#requeue(run.id);
    this.pump();
  }

  /**
   * Queues a suspended run again. Storage moves it only if it is still suspended, so of two
   * paths resuming one run (its approval decided, its agent started) one queues it, and a
   * run already running again is left on its worker.
   */
  async #requeue(runId: string): Promise<void> {
    const { requeued, run } = await this.#options.runs.requeueSuspended(
      runId,
      this.#options.clock.now(),
    );
    if (!requeued) return;
    this.#enqueue(run);
    await this.#publish(run);
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
   * A worker reported a run's end. If storage cannot record it, the run is queued again a
   * little later: its replay, answered from the journal, reports the same end.
   */
  async finished(runId: string, outcome: RunOutcome): Promise<void> {
    this.#release(runId);
    try {
      await this.#recordEnd(runId, outcome);
    } catch (error) {
      this.#retryLater(runId, error);
    } finally {
      this.pump();
    }
  }

  async #recordEnd(runId: string, outcome: RunOutcome): Promise<void> {
    const { runs, clock } = this.#options;
    if (!outcome.ok && outcome.error.code === 'KEEL_APPROVAL_REQUIRED') {
      const run = await runs.get(runId);
      if (run === undefined || hasEnded(run)) return;
      await this.#awaitApproval(run, outcome.error);
      return;
    }
    const end = await (outcome.ok
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
    // Ended already (an operator cancelled it first): that end stands, and was told.
    if (end === undefined || !end.ended) return;
    this.#options.runEnded?.(runId);
    const updated = end.run;
    // The end is on record: from here a failure is told, and nothing is retried.
    try {
      await this.#options.audit.record({
        kind: 'run.end',
        actor: `agent:${updated.agentId}`,
        agentId: updated.agentId,
        runId,
        subject: runId,
        outcome: updated.status,
        code: outcome.ok ? null : outcome.error.code,
        data: { attempts: updated.attempts },
      });
      await this.#publish(updated);
    } catch (error) {
      this.#options.logger.error(
        { err: toKeelError(error), runId, status: updated.status },
        'a run ended, but its end could not be audited or published',
      );
    }
  }

  /**
   * A run stopped at a call that needs a human: it waits, suspended, with the approval's id in
   * its error, and resumes by replay when the approval is decided (see {@link approvalDecided}).
   * Waiting does not count as a failed attempt.
   */
  async #awaitApproval(run: RunRecord, error: KeelError): Promise<void> {
    const { runs, clock } = this.#options;
    await runs.returnAttempt(run.id, clock.now());
    const updated = await runs.updateStatus(
      run.id,
      'suspended',
      clock.now(),
      error.toJSON() as unknown as JsonValue,
    );
    // Cancelled while its worker was reaching the call: it stays cancelled.
    if (hasEnded(updated)) return;
    const approvalId = (error.details.approvalId as string | undefined) ?? null;
    await this.#options.audit.record({
      kind: 'run.suspend',
      actor: `agent:${run.agentId}`,
      agentId: run.agentId,
      runId: run.id,
      subject: run.id,
      outcome: 'suspended',
      code: error.code,
      data: { approvalId },
    });
    await this.#publish(updated);
    // Decided while the run was still on its way here: that decision resumed nothing. (One
    // taken from now on finds the run suspended.)
    const { approvalPending } = this.#options;
    if (approvalId === null || approvalPending === undefined) return;
    if (await approvalPending(approvalId)) return;
    await this.#requeue(run.id);
    this.pump();
  }

  /**
   * An approval was decided (approved, denied or expired): the suspended run it belongs to goes
   * back in the queue. Its replay reaches the same call, which now runs, or is refused.
   */
  async approvalDecided(runId: string): Promise<void> {
    if (this.#closing) return;
    await this.#requeue(runId).catch((error: unknown) => {
      // A run removed meanwhile waits for nothing.
      if (toKeelError(error).code !== 'KEEL_NOT_FOUND') throw error;
    });
    this.pump();
  }

  /**
   * A worker ended with runs on it. After a crash they go back in the queue and resume by
   * replay; after an operator stopped the agent they wait, suspended, until it starts again.
   */
  async interrupted(runIds: readonly string[], exit: WorkerExit): Promise<void> {
    for (const runId of runIds) this.#release(runId);
    if (this.#closing) return;
    for (const runId of runIds) {
      try {
        await this.#interruptOne(runId, exit);
      } catch (error) {
        this.#retryLater(runId, error);
      }
    }
    this.pump();
  }

  async #interruptOne(runId: string, exit: WorkerExit): Promise<void> {
    const run = await this.#options.runs.get(runId);
    if (run === undefined || hasEnded(run)) return;
    if (exit.expected) {
      const updated = await this.#options.runs.updateStatus(
        runId,
        'suspended',
        this.#options.clock.now(),
      );
      if (!hasEnded(updated)) await this.#publish(updated);
      return;
    }
    const error = new KeelError('KEEL_WORKER_CRASHED', `${exit.reason}: ${exit.detail}`);
    const updated = await this.#options.runs.updateStatus(
      runId,
      'pending',
      this.#options.clock.now(),
      error.toJSON() as unknown as JsonValue,
    );
    // Cancelled meanwhile: it is not queued again.
    if (hasEnded(updated)) return;
    this.#enqueue(updated);
    await this.#publish(updated);
  }

  async cancel(runId: string, actor: string, reason: string): Promise<RunRecord> {
    this.#queue.remove(runId);
    const error = new KeelError('KEEL_RUN_CANCELLED', reason);
    const end = await this.#options.runs.end(
      runId,
      'cancelled',
      this.#options.clock.now(),
      undefined,
      error.toJSON() as unknown as JsonValue,
    );
    const updated = end.run;
    if (!end.ended) {
      throw new KeelError('KEEL_CONFLICT', `run ${runId} has already ended (${updated.status})`);
    }
    if (this.#starting.has(runId)) this.#cancelledWhileStarting.add(runId);
    this.#options.runEnded?.(runId);
    this.#options.cancelInWorker(updated.agentId, runId, reason);
    this.#release(runId);
    await this.#options.audit.record({
      kind: 'run.cancel',
      actor,
      agentId: updated.agentId,
      runId,
      subject: runId,
      outcome: 'cancelled',
      data: { reason },
    });
    await this.#publish(updated);
    this.pump();
    return updated;
  }

  /** Takes runs off the queue while there is capacity, and hands them to their workers. */
  pump(): void {
    if (this.#closing) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    void this.#drain()
      .catch((error: unknown) =>
        this.#options.logger.error({ err: error }, 'dispatching runs failed'),
      )
      .finally(() => {
        this.#pumping = false;
        if (this.#pumpAgain) {
          this.#pumpAgain = false;
          this.pump();
        }
      });
  }

  close(): void {
    this.#closing = true;
    for (const timer of this.#retries.values()) clearTimeout(timer);
    this.#retries.clear();
  }

  async #drain(): Promise<void> {
    for (;;) {
      const ready = this.#queue.takeReady();
      if (ready.length === 0) return;
      for (const queued of ready) {
        try {
          await this.#start(queued.runId, queued.agentId);
        } catch (error) {
          // One run storage could not start does not hold up the others, nor keep its slot.
          this.#release(queued.runId);
          this.#retryLater(queued.runId, error);
        }
      }
    }
  }

  /**
   * Storage failed while a run was between states (starting, ending, being requeued after a
   * crash): the run is queued again after a pause (`retryDelayMs`), and resumes by replay. A
   * run that ended or is suspended meanwhile is left as it is.
   */
  #retryLater(
    runId: string,
    error: unknown,
    delayMs = this.#options.retryDelayMs ?? RETRY_FIRST_MS,
  ): void {
    this.#options.logger.error(
      { err: toKeelError(error), runId, retryInMs: delayMs },
      'storage failed for a run between states; it will be queued again',
    );
    if (this.#closing || this.#retries.has(runId)) return;
    const timer = setTimeout(() => {
      this.#retries.delete(runId);
      if (this.#closing) return;
      void this.#options.runs.get(runId).then(
        (run) => {
          if (run === undefined || hasEnded(run) || run.status === 'suspended') return;
          this.#enqueue(run);
          this.pump();
        },
        (failure: unknown) => this.#retryLater(runId, failure, Math.min(RETRY_MAX_MS, delayMs * 2)),
      );
    }, delayMs);
    timer.unref();
    this.#retries.set(runId, timer);
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
    const attempt = await runs
      .startAttempt(runId, clock.now(), agent.maxAttempts)
      .catch((error: unknown) => {
        // A run removed while it waited in the queue.
        if (toKeelError(error).code === 'KEEL_NOT_FOUND') return undefined;
        this.#starting.delete(runId);
        this.#cancelledWhileStarting.delete(runId);
        throw error;
      });
    // Its submission's audit entry went in the same transaction, or is on its way.
    const onRecord = await submitted?.then(
      () => true,
      () => false,
    );
    // A cancel that ended the run while its attempt was being counted: the run is not
    // dispatched, and its slot was freed by the cancel. From here to the dispatch nothing
    // awaits, so a later cancel finds the run on its worker.
    this.#starting.delete(runId);
    const cancelled = this.#cancelledWhileStarting.delete(runId);
    if (attempt === undefined || attempt.outcome === 'ended' || cancelled || onRecord === false) {
      this.#release(runId);
      return;
    }
    const run = attempt.run;
    if (attempt.outcome === 'exhausted') {
      const end = await runs.end(runId, 'dead-lettered', clock.now());
      this.#release(runId);
      if (!end.ended) return;
      this.#options.runEnded?.(runId);
      await this.#options.audit.record({
        kind: 'run.dead-letter',
        actor: this.#options.actor,
        agentId: run.agentId,
        runId,
        subject: runId,
        outcome: 'dead-lettered',
        data: { attempts: run.attempts, lastError: run.error },
      });
      this.#options.logger.warn(
        { runId, attempts: run.attempts },
        'a run failed too many times; moved to the dead-letter list',
      );
      await this.#publish(end.run);
      return;
    }
    this.#options.attemptStarted?.(run, attempt.journalHead);
    try {
      this.#options.dispatch(run);
    } catch (error) {
      // The agent stopped between the queue and here: the run waits for it, and this attempt,
      // which never reached a worker, does not count towards the dead-letter list.
      this.#options.logger.debug({ err: toKeelError(error), runId }, 'run returned to the queue');
      this.#release(runId);
      const waiting = await runs.returnAttempt(runId, clock.now());
      this.#enqueue(waiting);
      this.#queue.pause(run.agentId);
      return;
    }
    // The run is on its worker: a status nobody could be told about changes nothing of that.
    await this.#publish(run).catch((error: unknown) =>
      this.#options.logger.debug({ err: error, runId }, 'could not publish a run status'),
    );
  }

  #enqueue(run: RunRecord): void {
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

/** Whether a run has ended (a status change that came too late leaves it as it was). */
function hasEnded(run: RunRecord): boolean {
  return FINAL_RUN_STATUSES.includes(run.status);
}
