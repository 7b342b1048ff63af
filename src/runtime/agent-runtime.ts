import type { RuntimeConfiguration } from '../kernel/config/runtime-configuration.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { APPROVAL_DECIDED } from '../kernel/kernel-topics.ts';
import type { EventBus } from '../platform/bus/event-bus.ts';
import type { Clock } from '../platform/clock/clock.ts';
import { KeelError, toKeelError } from '../platform/errors/keel-error.ts';
import type { Logger } from '../platform/observability/logger.ts';
import type { AgentRecord, AgentStateChange } from '../platform/storage/ports/agent-store.ts';
import type { JsonObject } from '../platform/storage/ports/json-value.ts';
import {
  forEachRun,
  type JournalEntry,
  type RunRecord,
} from '../platform/storage/ports/run-store.ts';
import type { Storage } from '../platform/storage/storage.ts';
import {
  type AgentDeployer,
  type DeploymentMetadata,
  type DeployResult,
  deploymentOf,
  manifestName,
} from './agents/agent-deployer.ts';
import { toolLoopSettingsOf } from './agents/tool-loop-settings-of.ts';
import type { AgentManifest } from './manifests/agent-manifest.ts';
import { RunManager } from './runs/run-manager.ts';
import { ScheduleRunner } from './runs/schedule-runner.ts';
import { AgentSupervisor } from './supervisor/agent-supervisor.ts';
import { RestartPolicy } from './supervisor/restart-policy.ts';
import type { ToolDescriptor } from './worker/agent-program.ts';
import { AgentWorker, type LaunchedProcess } from './worker/agent-worker.ts';

export interface AgentRuntimeOptions {
  readonly kernel: Kernel;
  readonly storage: Storage;
  readonly bus: EventBus;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly configuration: RuntimeConfiguration;
  /** The largest frame a worker may send (`workerFrameLimit`). */
  readonly workerFrameBytes: number;
  readonly deployer: AgentDeployer;
  /** Launches a worker process for an agent (sandboxed as the host allows). */
  /** Starts an agent's worker process; `signal` aborts a start that was given up on. */
  readonly launch: (
    agent: AgentRecord,
    deployment: DeploymentMetadata,
    signal: AbortSignal,
  ) => Promise<LaunchedProcess>;
  /** Describes the tools an agent's manifest allows (those the node has). */
  readonly describeTools: (names: readonly string[]) => readonly ToolDescriptor[];
  /** Gives an agent's tools the workspace its manifest names (or none). */
  readonly assignWorkspace?: (
    agentId: string,
    workspace: AgentManifest['workspace'] | undefined,
  ) => Promise<void>;
  readonly actor: string;
}

/** An agent as `keel agent list|show` prints it. */
export interface AgentView {
  readonly id: string;
  readonly name: string;
  readonly version: string;
  readonly state: AgentRecord['state'];
  readonly trust: string;
  readonly program: string;
  readonly signedBy: string | null;
  readonly digest: string;
  readonly worker: {
    readonly pid: number | null;
    readonly heapUsed: number;
    readonly rss: number;
    readonly isolation: readonly string[];
    readonly missing: readonly string[];
  } | null;
  readonly activeRuns: number;
}

/** Built-in programs that run the tool loop, whose settings the manifest's limits cap. */
const TOOL_LOOP_PROGRAMS = new Set(['tool-loop', 'coder']);

const INACTIVE = new Set<AgentRecord['state']>(['stopped', 'removed', 'disabled']);

/**
 * The agent runtime of one node: deployed agents with a supervised worker each, the run
 * manager that feeds them, and the schedules that submit runs. Every operator action is
 * audited; every lifecycle transition is persisted with its reason.
 *
 * @example
 * ```ts
 * const runtime = new AgentRuntime({ kernel, storage, bus, clock, logger, configuration, deployer, launch, describeTools, actor });
 * await runtime.start();
 * const run = await runtime.submitRun('demo', { prompt: 'hello' }, { origin: 'cli', actor: 'operator:local' });
 * ```
 */
export class AgentRuntime {
  readonly #options: AgentRuntimeOptions;
  readonly #supervisors = new Map<string, AgentSupervisor>();
  readonly #deployments = new Map<string, DeploymentMetadata>();
  /** Each deployment's tool descriptions, computed once when it is deployed or loaded. */
  readonly #tools = new Map<string, readonly ToolDescriptor[]>();
  readonly runs: RunManager;
  readonly #schedules: ScheduleRunner;
  #closed = false;
  readonly #approvalsFollowed = new AbortController();
  /** Work on an agent in progress (a deploy, a lifecycle action), by name: see `#oneAtATime`. */
  readonly #agentWork = new Map<string, Promise<unknown>>();

  constructor(options: AgentRuntimeOptions) {
    this.#options = options;
    const { kernel } = options;
    this.runs = new RunManager({
      runs: options.storage.runs,
      budgets: kernel.budgets,
      audit: kernel.audit,
      bus: options.bus,
      clock: options.clock,
      logger: options.logger,
      actor: options.actor,
      maxConcurrent: options.configuration.maxConcurrentRuns,
      agent: (agentId) => {
        const deployment = this.#deployments.get(agentId);
        if (deployment === undefined) return undefined;
        const { limits, budgets } = deployment.manifest;
        return {
          concurrency: limits.concurrency,
          maxAttempts: limits.maxAttempts,
          runBudget: budgets?.run,
        };
      },
      attemptStarted: (run, journalHead) => kernel.runStarted(run, journalHead),
      lastReplayStarted: (run, journalHead) => kernel.lastReplayStarted(run, journalHead),
      lastReplayEnded: (runId) => kernel.lastReplayEnded(runId),
      runEnded: (runId) => kernel.runEnded(runId),
      approvalPending: async (approvalId) =>
        (await kernel.approvals.get(approvalId))?.state === 'pending',
      dispatch: (run) => this.#dispatch(run),
      cancelInWorker: (agentId, runId, reason) =>
        this.#supervisors.get(agentId)?.cancel(runId, reason),
    });
    this.#schedules = new ScheduleRunner({
      keyValues: options.storage.keyValues,
      clock: options.clock,
      logger: options.logger,
      tickMs: options.configuration.scheduleTickMs,
      submit: async (agentId, task, priority, origin) => {
        // A stopped or removed agent's schedule does not pile runs up for its next start, nor
        // does that of one left crashed past its restart budget.
        const supervisor = this.#supervisors.get(agentId);
        const state = supervisor?.state;
        if (state === 'stopped' || state === 'removed' || state === 'stopping') {
          throw new KeelError('KEEL_AGENT_NOT_RUNNING', `agent ${agentId} is ${state}`);
        }
        this.#refuseIfGivenUp(agentId, this.#deployments.get(agentId)?.manifest.id ?? agentId);
        return this.runs.submit({ agentId, task, priority, origin, actor: `schedule:${agentId}` });
      },
    });
  }

  /** Starts the workers of agents that were running, and resumes unfinished runs. */
  async start(): Promise<void> {
    const agents = await this.#options.kernel.agents.list();
    for (const agent of agents) {
      if (agent.state === 'removed') continue;
      let deployment: DeploymentMetadata;
      try {
        deployment = deploymentOf(agent);
      } catch (error) {
        this.#options.logger.error(
          { agent: agent.name, err: error },
          'an agent record holds an invalid manifest; it is left stopped',
        );
        continue;
      }
      this.#remember(agent.id, deployment);
      await this.#assignWorkspace(agent.id, deployment);
      const supervisor = this.#supervisorFor(agent);
      this.runs.setAvailable(agent.id, false);
      this.#schedules.register(agent.id, deployment.manifest.schedule ?? []);
      const distrust = this.#options.deployer.distrust(deployment);
      if (distrust !== undefined && !INACTIVE.has(agent.state)) {
        // Trust is the node's current configuration, not the one the agent was deployed under.
        this.#options.logger.error(
          { agent: agent.name, code: distrust.code, hint: distrust.hint },
          `${distrust.message}; it is left stopped`,
        );
        await supervisor.stop(distrust.message);
        await this.#auditRefusedStart(agent, 'start', this.#options.actor, distrust);
        continue;
      }
      if (!INACTIVE.has(agent.state)) {
        const pausedBefore = agent.state === 'paused';
        await supervisor.start('node started');
        if (pausedBefore) await supervisor.pause('paused before the node stopped');
      }
    }
    this.#followApprovals();
    const recovered = await this.runs.recover();
    if (recovered > 0) {
      this.#options.logger.info({ runs: recovered }, 'resuming runs left unfinished');
    }
    this.#schedules.start();
  }

  /**
   * Deploys a manifest (see `AgentDeployer`) and starts or restarts the agent's worker on it.
   * One agent's deploys go one at a time: each reads the version deployed before it and checks
   * the new one against it, so two at once could both pass and land in either order, leaving
   * the older version's grants on record while the newer one ran.
   */
  deploy(value: unknown, actor: string): Promise<DeployResult> {
    return this.#oneAtATime(manifestName(value) ?? '', () => this.#deploy(value, actor));
  }

  /**
   * Runs `work` on the agent `name` after the work on it already waiting (deploys and
   * lifecycle actions), so that, say, a remove and a deploy of one agent cannot interleave
   * their grants. Work on other agents goes on meanwhile; a failure does not hold up the next.
   */
  #oneAtATime<T>(name: string, work: () => Promise<T>): Promise<T> {
    const turn = (this.#agentWork.get(name) ?? Promise.resolve()).then(work);
    const settled = turn.then(
      () => undefined,
      () => undefined,
    );
    this.#agentWork.set(name, settled);
    void settled.then(() => {
      if (this.#agentWork.get(name) === settled) this.#agentWork.delete(name);
    });
    return turn;
  }

  async #deploy(value: unknown, actor: string): Promise<DeployResult> {
    const result = await this.#options.deployer.deploy(value, actor);
    if (result.outcome === 'unchanged') return result;
    const { agent, deployment } = result;
    this.#remember(agent.id, deployment);
    await this.#assignWorkspace(agent.id, deployment);
    this.#schedules.register(agent.id, deployment.manifest.schedule ?? []);
    const supervisor = this.#supervisorFor(agent);
    if (result.outcome === 'created' || supervisor.state === 'removed') {
      await supervisor.start(`deployed ${deployment.manifest.version}`);
    } else {
      // A new version replaces the worker; its runs resume on the new one (a run whose journal
      // the new program does not replay the same way fails with KEEL_REPLAY_MISMATCH). A
      // paused agent stays paused: only `keel agent resume` lets it go on.
      const pausedBefore = supervisor.state === 'paused';
      await supervisor.restart(`deployed ${deployment.manifest.version}`);
      if (pausedBefore && supervisor.available) {
        await supervisor.pause('paused before the deployment');
      }
    }
    await this.runs.resumeSuspended(agent.id);
    return { ...result, agent: (await this.#options.kernel.agents.get(agent.id)) ?? agent };
  }

  async list(): Promise<readonly AgentView[]> {
    const agents = await this.#options.kernel.agents.list();
    return agents.filter((agent) => agent.state !== 'removed').map((agent) => this.#view(agent));
  }

  async show(
    name: string,
  ): Promise<{ agent: AgentView; manifest: JsonObject; history: readonly AgentStateChange[] }> {
    const agent = await this.#agent(name);
    const history = await this.#options.storage.agents.history(agent.id, 50);
    return {
      agent: this.#view(agent),
      manifest: agent.metadata.manifest as JsonObject,
      history,
    };
  }

  lifecycle(
    name: string,
    action: 'pause' | 'resume' | 'stop' | 'start' | 'restart' | 'remove',
    actor: string,
  ): Promise<AgentView> {
    if (action === 'stop' || action === 'remove') {
      // A worker still starting (a deploy's, a start's) is given up on now: the action would
      // otherwise wait for it to start, or for its start timeout. (A restart gives up on it
      // when its turn comes, once the node's trust in the agent has been checked.)
      for (const supervisor of this.#supervisors.values()) {
        if (supervisor.name === name) supervisor.abandonStart(`${action} by ${actor}`);
      }
    }
    return this.#oneAtATime(name, () => this.#lifecycle(name, action, actor));
  }

  async #lifecycle(
    name: string,
    action: 'pause' | 'resume' | 'stop' | 'start' | 'restart' | 'remove',
    actor: string,
  ): Promise<AgentView> {
    const agent = await this.#agent(name);
    const supervisor = this.#supervisorFor(agent);
    const reason = `${action} by ${actor}`;
    if (action === 'start' || action === 'restart') {
      const deployment = this.#deployments.get(agent.id);
      const distrust =
        deployment === undefined ? undefined : this.#options.deployer.distrust(deployment);
      if (distrust !== undefined) {
        await this.#auditRefusedStart(agent, action, actor, distrust);
        throw distrust;
      }
    }
    switch (action) {
      case 'pause':
        await supervisor.pause(reason);
        break;
      case 'resume':
        await supervisor.resume(reason);
        break;
      case 'stop':
        await supervisor.stop(reason);
        break;
      case 'start':
        await supervisor.start(reason);
        await this.runs.resumeSuspended(agent.id);
        break;
      case 'restart':
        await supervisor.restart(reason);
        await this.runs.resumeSuspended(agent.id);
        break;
      case 'remove':
        await this.#remove(agent, supervisor, actor);
        break;
    }
    await this.#options.kernel.audit.record({
      kind: `agent.${action}`,
      actor,
      agentId: agent.id,
      subject: agent.name,
      outcome: supervisor.state,
      data: {},
    });
    const updated = (await this.#options.kernel.agents.get(agent.id)) ?? agent;
    return this.#view(updated);
  }

  async submitRun(
    name: string,
    task: JsonObject,
    options: { readonly priority?: number; readonly origin: string; readonly actor: string },
  ): Promise<RunRecord> {
    const agent = await this.#agent(name);
    if (agent.state === 'stopped' || agent.state === 'removed') {
      throw new KeelError('KEEL_AGENT_NOT_RUNNING', `agent ${name} is ${agent.state}`, {
        details: { state: agent.state },
        hint:
          agent.state === 'stopped'
            ? `start it with \`keel agent start ${name}\`, then submit the run again`
            : `deploy it again with \`keel agent deploy <manifest>\`, then submit the run again`,
      });
    }
    this.#refuseIfGivenUp(agent.id, name);
    return this.runs.submit({ agentId: agent.id, task, ...options });
  }

  async listRuns(filter: {
    readonly agent?: string;
    readonly status?: RunRecord['status'];
    readonly limit?: number;
  }): Promise<readonly (RunRecord & { readonly steps: number })[]> {
    const agentId = filter.agent === undefined ? undefined : (await this.#agent(filter.agent)).id;
    const runs = await this.#options.storage.runs.list({
      ...(agentId === undefined ? {} : { agentId }),
      ...(filter.status === undefined ? {} : { status: filter.status }),
      limit: filter.limit ?? 50,
    });
    const counts = await this.#options.storage.runs.journalCounts(runs.map((run) => run.id));
    return runs.map((run) => ({ ...run, steps: counts[run.id] ?? 0 }));
  }

  async showRun(runId: string): Promise<{ run: RunRecord; journal: readonly JournalEntry[] }> {
    const run = await this.#options.storage.runs.get(runId);
    if (run === undefined) throw new KeelError('KEEL_NOT_FOUND', `no run ${runId}`);
    return { run, journal: await this.#options.storage.runs.listJournal(runId) };
  }

  cancelRun(runId: string, actor: string): Promise<RunRecord> {
    return this.runs.cancel(runId, actor, `cancelled by ${actor}`);
  }

  /** Stops schedules and workers; runs keep their status so the next start resumes them. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#approvalsFollowed.abort();
    this.#schedules.close();
    this.runs.close();
    await Promise.all([...this.#supervisors.values()].map((supervisor) => supervisor.close()));
  }

  async #agent(name: string): Promise<AgentRecord> {
    const agent = await this.#options.kernel.agents.getByName(name);
    if (agent === undefined || agent.state === 'removed') {
      throw new KeelError('KEEL_NOT_FOUND', `no agent named ${name}`, {
        hint: 'list the deployed agents with `keel agent list`',
      });
    }
    return agent;
  }

  /** Refuses runs for an agent that crashed past its restart budget and stays down. */
  #refuseIfGivenUp(agentId: string, name: string): void {
    if (this.#supervisors.get(agentId)?.gaveUp !== true) return;
    throw new KeelError(
      'KEEL_AGENT_NOT_RUNNING',
      `agent ${name} crashed more often than its restart budget allows and stays down; see \`keel agent show ${name}\`, then restart it with \`keel agent restart ${name}\``,
    );
  }

  /** Audits a start the node's trust configuration refused. */
  async #auditRefusedStart(
    agent: AgentRecord,
    action: 'start' | 'restart',
    actor: string,
    distrust: KeelError,
  ): Promise<void> {
    await this.#options.kernel.audit.record({
      kind: `agent.${action}`,
      actor,
      agentId: agent.id,
      subject: agent.name,
      outcome: 'denied',
      code: distrust.code,
      data: { reason: distrust.message },
    });
  }

  /**
   * Stops the agent, revokes its grants, drops its schedules and cancels its open runs, and
   * only then marks it removed: a remove that storage fails halfway leaves the agent stopped,
   * and removing it again finishes the work. A run that ends while it is being cancelled is
   * left as it ended.
   */
  async #remove(agent: AgentRecord, supervisor: AgentSupervisor, actor: string): Promise<void> {
    const reason = `removed by ${actor}`;
    await supervisor.stop(reason);
    await this.#options.kernel.capabilities.replace(agent.id, [], actor);
    this.#schedules.register(agent.id, []);
    await this.#cancelOpenRuns(agent.id, actor);
    await supervisor.stop(reason, 'removed');
    // A run submitted before the agent was marked removed (none can be after).
    await this.#cancelOpenRuns(agent.id, actor);
    this.#deployments.delete(agent.id);
    this.#tools.delete(agent.id);
    this.#supervisors.delete(agent.id);
  }

  async #cancelOpenRuns(agentId: string, actor: string): Promise<void> {
    await forEachRun(
      this.#options.storage.runs,
      { agentId, statuses: ['pending', 'running', 'suspended'] },
      async (run) => {
        try {
          await this.runs.cancel(run.id, actor, 'the agent was removed');
        } catch (error) {
          // It ended (or went) since it was listed: nothing left to cancel.
          const code = toKeelError(error).code;
          if (code !== 'KEEL_CONFLICT' && code !== 'KEEL_NOT_FOUND') throw error;
        }
      },
    );
  }

  #view(agent: AgentRecord): AgentView {
    const deployment = this.#deployments.get(agent.id);
    const worker = this.#supervisors.get(agent.id)?.worker;
    const program = deployment?.manifest.program;
    return {
      id: agent.id,
      name: agent.name,
      version: deployment?.manifest.version ?? '?',
      state: agent.state,
      trust: deployment?.manifest.trust ?? agent.trustLevel,
      program:
        program === undefined ? '?' : 'builtin' in program ? program.builtin : program.module,
      signedBy: deployment?.keyId ?? null,
      digest: deployment?.digest ?? '',
      worker:
        worker === undefined
          ? null
          : {
              pid: worker.pid,
              heapUsed: worker.memory.heapUsed,
              rss: worker.memory.rss,
              isolation: worker.layers.applied,
              missing: worker.layers.missing,
            },
      activeRuns: worker?.runIds.length ?? 0,
    };
  }

  #supervisorFor(agent: AgentRecord): AgentSupervisor {
    const existing = this.#supervisors.get(agent.id);
    if (existing !== undefined) return existing;
    const { configuration, clock, logger } = this.#options;
    const supervisor = new AgentSupervisor(
      {
        agent: { id: agent.id, name: agent.name },
        directory: this.#options.kernel.agents,
        policy: new RestartPolicy({
          initialDelayMs: configuration.restartInitialDelayMs,
          maxDelayMs: configuration.restartMaxDelayMs,
          budget: configuration.restartBudget,
          windowMs: configuration.restartWindowMs,
        }),
        clock,
        logger,
        stopGraceMs: 5_000,
        createWorker: (events) => {
          const deployment = this.#deployments.get(agent.id);
          if (deployment === undefined) {
            throw new KeelError('KEEL_NOT_FOUND', `agent ${agent.name} has no deployment`);
          }
          return new AgentWorker({
            agent: { id: agent.id, name: agent.name, version: deployment.manifest.version },
            launch: (signal) => this.#options.launch(agent, deployment, signal),
            gate: this.#options.kernel.gate,
            clock,
            logger: logger.child({ agent: agent.name }),
            watchdogTimeoutMs: configuration.watchdogTimeoutMs,
            startTimeoutMs: 30_000,
            maxFrameBytes: this.#options.workerFrameBytes,
            ...events,
          });
        },
        onStep: (event) => this.runs.step(agent.id, event),
        onRunDone: (runId, outcome) => {
          void this.runs
            .finished(runId, outcome)
            .catch((error: unknown) =>
              logger.error({ err: error, runId }, 'recording a run end failed'),
            );
        },
        onRunsInterrupted: (runIds, exit) =>
          this.runs
            .interrupted(runIds, exit)
            .catch((error: unknown) => logger.error({ err: error }, 'requeueing runs failed')),
        onAvailability: (agentId, available) => this.runs.setAvailable(agentId, available),
      },
      agent.state,
    );
    this.#supervisors.set(agent.id, supervisor);
    return supervisor;
  }

  /** Resumes a run waiting for an approval once somebody (or the expiry) decides it. */
  #followApprovals(): void {
    const decided = this.#options.bus.subscribe(APPROVAL_DECIDED, {
      signal: this.#approvalsFollowed.signal,
    });
    void (async () => {
      for await (const decision of decided) {
        if (decision.runId === null) continue;
        await this.runs
          .approvalDecided(decision.runId)
          .catch((error: unknown) =>
            this.#options.logger.error(
              { err: error, runId: decision.runId },
              'could not resume a run after its approval was decided',
            ),
          );
      }
    })().catch((error: unknown) => {
      if (!this.#closed) {
        this.#options.logger.error({ err: error }, 'stopped following approval decisions');
      }
    });
  }

  /** A workspace that cannot be opened leaves the agent without one: its tools say so. */
  async #assignWorkspace(agentId: string, deployment: DeploymentMetadata): Promise<void> {
    try {
      await this.#options.assignWorkspace?.(agentId, deployment.manifest.workspace);
    } catch (error) {
      this.#options.logger.error(
        { agentId, err: error },
        "the agent's workspace cannot be opened; its file, shell and git tools are refused",
      );
      await this.#options.assignWorkspace?.(agentId, undefined);
    }
  }

  #remember(agentId: string, deployment: DeploymentMetadata): void {
    this.#deployments.set(agentId, deployment);
    this.#tools.set(agentId, this.#options.describeTools(deployment.manifest.tools));
  }

  #dispatch(run: RunRecord): void {
    const supervisor = this.#supervisors.get(run.agentId);
    const deployment = this.#deployments.get(run.agentId);
    if (supervisor === undefined || deployment === undefined) {
      throw new KeelError('KEEL_AGENT_NOT_RUNNING', `agent ${run.agentId} has no worker`);
    }
    const { manifest } = deployment;
    const program =
      'builtin' in manifest.program
        ? { builtin: manifest.program.builtin }
        : { module: deployment.modulePath ?? manifest.program.module };
    const settings: JsonObject =
      'builtin' in manifest.program && TOOL_LOOP_PROGRAMS.has(manifest.program.builtin)
        ? toolLoopSettingsOf(manifest.program.settings as JsonObject, manifest)
        : (manifest.program.settings as JsonObject);
    supervisor.assign({
      runId: run.id,
      program,
      task: run.task,
      tools: this.#tools.get(run.agentId) ?? [],
      settings,
      model: manifest.models?.default ?? null,
    });
  }
}
