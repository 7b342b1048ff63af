import type { AgentDirectory } from '../../kernel/identity/agent-directory.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { AgentState } from '../../platform/storage/ports/agent-store.ts';
import type {
  AgentWorker,
  RunAssignment,
  RunOutcome,
  StepEvent,
  WorkerExit,
} from '../worker/agent-worker.ts';
import type { RestartPolicy } from './restart-policy.ts';

export interface AgentSupervisorOptions {
  readonly agent: { readonly id: string; readonly name: string };
  readonly directory: AgentDirectory;
  readonly policy: RestartPolicy;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Makes a new (unstarted) worker whose events come back through the three callbacks. */
  readonly createWorker: (events: {
    readonly onStep: (event: StepEvent) => void;
    readonly onRunDone: (runId: string, outcome: RunOutcome) => void;
    readonly onExit: (exit: WorkerExit) => void;
  }) => AgentWorker;
  /** A step of one of this agent's runs. */
  readonly onStep: (event: StepEvent) => void;
  readonly onRunDone: (runId: string, outcome: RunOutcome) => void;
  /** Runs that lost their worker (crash or stop); the run manager requeues or suspends them. */
  readonly onRunsInterrupted: (runIds: readonly string[], exit: WorkerExit) => Promise<void>;
  /** The agent can (again, or no longer) take runs. */
  readonly onAvailability: (agentId: string, available: boolean) => void;
  readonly stopGraceMs: number;
}

/**
 * Supervises one agent's worker through the lifecycle of DESIGN.md —
 * `created → starting → running ⇄ paused → stopping → stopped`, and `crashed → restarting`
 * with exponential backoff and a restart budget — persisting every transition (with its
 * reason) through the agent directory.
 *
 * @example
 * ```ts
 * const supervisor = new AgentSupervisor({ agent, directory: kernel.agents, policy, clock, logger, createWorker, onStep, onRunDone, onRunsInterrupted, onAvailability, stopGraceMs: 5_000 });
 * await supervisor.start('deployed');
 * ```
 */
export class AgentSupervisor {
  readonly #options: AgentSupervisorOptions;
  #state: AgentState = 'created';
  #worker: AgentWorker | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #operation: Promise<void> = Promise.resolve();
  #closed = false;
  #gaveUp = false;
  /**
   * Workers whose end is already accounted for: a launch that failed (its exit is that
   * failure) or a stop (its exit is expected, whatever caused it).
   */
  readonly #settled = new WeakSet<AgentWorker>();
  /** The run manager taking back the runs of the worker that last exited. */
  #handedBack: Promise<void> | undefined;
  /**
   * While a launch is in progress: its worker once made, and why a stop, restart or close
   * gave up on it, if one did.
   */
  #launching = false;
  #starting: AgentWorker | undefined;
  #startAbandoned: string | undefined;
  /** An operator paused the agent before its worker crashed: the restart comes back paused. */
  #pausedAtCrash = false;

  constructor(options: AgentSupervisorOptions, state: AgentState) {
    this.#options = options;
    this.#state = state;
  }

  get state(): AgentState {
    return this.#state;
  }

  get name(): string {
    return this.#options.agent.name;
  }

  /**
   * Whether the agent crashed more often than its restart budget allows: it stays down until
   * an operator starts or restarts it, so new runs for it would only pile up.
   */
  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /** Whether the agent can take a run now. */
  get available(): boolean {
    return this.#state === 'running' && this.#worker !== undefined;
  }

  get worker(): AgentWorker | undefined {
    return this.#worker;
  }

  /** Starts the worker (from created, stopped or crashed). */
  start(reason: string): Promise<void> {
    return this.#serialise(async () => {
      if (this.#worker !== undefined) return;
      this.#pausedAtCrash = false;
      this.#options.policy.reset();
      await this.#launch(reason);
    });
  }

  /** Holds the agent's syscalls until `resume`; no new runs start. */
  pause(reason: string): Promise<void> {
    return this.#serialise(async () => {
      this.#require(['running'], 'pause');
      this.#worker?.pause();
      try {
        await this.#transition('paused', reason);
      } catch (error) {
        // Not paused, then: the worker's syscalls go on, as its recorded state says.
        this.#worker?.resume();
        throw error;
      }
      this.#options.onAvailability(this.#options.agent.id, false);
    });
  }

  resume(reason: string): Promise<void> {
    return this.#serialise(async () => {
      this.#require(['paused'], 'resume');
      // Running first: the held syscalls reach the gate only once the agent may make them.
      await this.#transition('running', reason);
      this.#worker?.resume();
      this.#options.onAvailability(this.#options.agent.id, true);
    });
  }

  /**
   * Stops the worker; its runs are interrupted (the run manager suspends them). A worker
   * still starting is given up on at once, not left to its start timeout first.
   */
  stop(reason: string, final: AgentState = 'stopped'): Promise<void> {
    this.abandonStart(reason);
    return this.#serialise(() => this.#stop(reason, final));
  }

  /**
   * Gives up on a worker still starting (its launch or its hello): its start fails at once,
   * and the agent is not counted as crashed for it. The caller stops or restarts the agent.
   */
  abandonStart(reason: string): void {
    if (!this.#launching) return;
    this.#startAbandoned = reason;
    this.#starting?.abandonStart(reason);
  }

  restart(reason: string): Promise<void> {
    this.abandonStart(reason);
    return this.#serialise(async () => {
      if (this.#worker !== undefined) await this.#stop(reason, 'stopped');
      this.#pausedAtCrash = false;
      this.#options.policy.reset();
      await this.#launch(reason);
    });
  }

  assign(run: RunAssignment): void {
    if (!this.available || this.#worker === undefined) {
      throw new KeelError(
        'KEEL_AGENT_NOT_RUNNING',
        `agent ${this.#options.agent.name} is ${this.#state}`,
      );
    }
    this.#worker.assign(run);
  }

  cancel(runId: string, reason: string): void {
    this.#worker?.cancel(runId, reason);
  }

  /** Stops for node shutdown: the persisted state stays as it was so the next start resumes. */
  async close(): Promise<void> {
    this.#closed = true;
    this.abandonStart('the node is shutting down');
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    // The chain never rejects (see #serialise): a failed operation was reported to its caller.
    await this.#operation;
    const worker = this.#worker;
    if (worker === undefined) return;
    await worker.stop(this.#options.stopGraceMs);
  }

  #serialise(operation: () => Promise<void>): Promise<void> {
    const next = this.#operation.then(operation);
    // The caller gets the failure through `next`; the chain itself goes on with the next one.
    this.#operation = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /**
   * Refuses `action` outside `states`: `KEEL_CONFLICT` when the agent is up but in the other
   * state (resuming a running agent), `KEEL_AGENT_NOT_RUNNING` when it has no worker to act on.
   */
  #require(states: readonly AgentState[], action: string): void {
    if (states.includes(this.#state)) return;
    const name = this.#options.agent.name;
    const details = { state: this.#state };
    if (this.#state === 'running' || this.#state === 'paused') {
      throw new KeelError('KEEL_CONFLICT', `agent ${name} is ${this.#state} already`, {
        details,
        hint: `nothing to ${action}; \`keel agent show ${name}\` prints its state`,
      });
    }
    throw new KeelError(
      'KEEL_AGENT_NOT_RUNNING',
      `agent ${name} is ${this.#state}; it cannot ${action}`,
      {
        details,
        hint: `start it with \`keel agent start ${name}\` (or \`keel agent restart ${name}\`)`,
      },
    );
  }

  async #transition(to: AgentState, reason: string): Promise<void> {
    if (this.#state === to) return;
    await this.#options.directory.setState(this.#options.agent.id, to, undefined, reason);
    this.#state = to;
  }

  /**
   * A change of state nobody asked for (a crash, a restart, a worker ready): it happened
   * whether or not storage can record it, so the agent goes on from it either way (a crashed
   * worker is restarted, a ready one takes runs), and a failure to record it is logged.
   */
  async #record(to: AgentState, reason: string): Promise<void> {
    try {
      await this.#transition(to, reason);
    } catch (error) {
      this.#state = to;
      this.#options.logger.error(
        { agent: this.#options.agent.name, state: to, err: error },
        'could not record the agent state; its history misses this change',
      );
    }
  }

  /** `automatic` for a restart after a crash: a state it cannot record does not stop it. */
  async #launch(reason: string, automatic = false): Promise<void> {
    if (this.#closed) return;
    // A pending restart after a crash is superseded by this launch, and one worker at a time.
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    if (this.#worker !== undefined) return;
    this.#gaveUp = false;
    this.#launching = true;
    this.#startAbandoned = undefined;
    try {
      if (automatic) await this.#record('starting', reason);
      else await this.#transition('starting', reason);
      // Given up on while its start was being recorded: no worker is launched.
      if (this.#startAbandoned === undefined) await this.#startWorker();
      else await this.#abandoned(this.#startAbandoned);
    } finally {
      this.#launching = false;
      this.#starting = undefined;
    }
  }

  /** Whoever gave up on a start (a stop, a restart, shutdown) takes the agent from here. */
  async #abandoned(reason: string): Promise<void> {
    this.#options.logger.info(
      { agent: this.#options.agent.name, reason },
      'gave up starting the agent worker',
    );
    // A node shutting down leaves the agent's state as it was, for the next start.
    if (!this.#closed) await this.#transition('stopped', `gave up starting: ${reason}`);
  }

  async #startWorker(): Promise<void> {
    const worker = this.#options.createWorker({
      onStep: this.#options.onStep,
      onRunDone: this.#options.onRunDone,
      onExit: (exit) => {
        // The runs go back at once (not behind queued operations), so that a stop or restart
        // returns with them already suspended and can resume them.
        this.#handedBack =
          exit.runs.length > 0 ? this.#options.onRunsInterrupted(exit.runs, exit) : undefined;
        // Only the current worker's end changes the agent's state: one that a newer worker
        // replaced no longer speaks for the agent.
        if (this.#worker !== worker) return;
        this.#worker = undefined;
        void this.#serialise(() => this.#onExit(worker, exit)).catch((error: unknown) =>
          this.#options.logger.error(
            { agent: this.#options.agent.name, err: error },
            'handling the end of the agent worker failed',
          ),
        );
      },
    });
    this.#worker = worker;
    this.#starting = worker;
    try {
      await worker.start();
    } catch (error) {
      if (this.#worker === worker) this.#worker = undefined;
      // Its exit (queued behind this launch) is this failure, not a second crash.
      this.#settled.add(worker);
      const abandoned = this.#startAbandoned;
      if (abandoned !== undefined) {
        await this.#abandoned(abandoned);
        return;
      }
      this.#options.logger.error(
        { agent: this.#options.agent.name, err: error },
        'the agent worker failed to start',
      );
      await this.#crashed(toKeelError(error).message);
      return;
    }
    this.#options.policy.started(this.#options.clock.monotonic());
    if (this.#pausedAtCrash) {
      // An operator's pause outlives a crash: the new worker holds its syscalls too.
      this.#pausedAtCrash = false;
      worker.pause();
      await this.#record('paused', 'paused before the worker crashed');
      return;
    }
    await this.#record('running', 'worker ready');
    this.#options.onAvailability(this.#options.agent.id, true);
  }

  async #stop(reason: string, final: AgentState): Promise<void> {
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#options.onAvailability(this.#options.agent.id, false);
    const worker = this.#worker;
    if (worker !== undefined) {
      // Whatever ends it from here (this stop, or a crash racing it) is part of the stop.
      this.#settled.add(worker);
      await this.#transition('stopping', reason);
      await worker.stop(this.#options.stopGraceMs);
      await worker.ended;
      await this.#handedBack;
    }
    await this.#transition(final, reason);
  }

  async #onExit(worker: AgentWorker, exit: WorkerExit): Promise<void> {
    // Stale by now: its launch failed, an operator stopped it, or a newer worker replaced it.
    if (this.#settled.has(worker) || this.#worker !== undefined) return;
    if (exit.expected || this.#closed) return;
    this.#options.onAvailability(this.#options.agent.id, false);
    this.#options.logger.warn(
      { agent: this.#options.agent.name, reason: exit.reason, detail: exit.detail },
      'agent worker crashed',
    );
    if (this.#state === 'paused') this.#pausedAtCrash = true;
    await this.#crashed(`${exit.reason}: ${exit.detail}`);
  }

  async #crashed(detail: string): Promise<void> {
    // A node shutting down restarts nothing (nor keeps its event loop alive for a timer).
    if (this.#closed) return;
    const decision = this.#options.policy.next(this.#options.clock.monotonic());
    // Before any await: from the crash on, a run submitted for an agent given up on is refused.
    if (!decision.restart) this.#gaveUp = true;
    await this.#record('crashed', detail);
    if (!decision.restart) {
      this.#options.logger.error(
        { agent: this.#options.agent.name },
        'agent crashed more often than its restart budget allows; it stays crashed until restarted',
      );
      return;
    }
    await this.#record('restarting', `restart in ${decision.delayMs} ms`);
    // The node began to shut down while the crash was being recorded.
    if (this.#closed) return;
    // One pending restart at a time.
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      void this.#serialise(() => this.#launch('restart after crash', true)).catch(
        (error: unknown) =>
          this.#options.logger.error({ err: error }, 'restarting the agent failed'),
      );
    }, decision.delayMs);
  }
}
