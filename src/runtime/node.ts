/**
 * The composition root: the one place where Keel's parts are created, wired and disposed, in
 * a known order. Everything stateful here belongs to the KeelNode instance.
 */

import { join } from 'node:path';
import { claimDataDirectory } from '../kernel/config/data-directory.ts';
import {
  AUDIT_KEY_SECRET,
  decodeAuditKey,
  executableSearchPath,
  type LoadedConfiguration,
} from '../kernel/config/load-configuration.ts';
import type { SyscallExecutor } from '../kernel/gate/syscall.ts';
import { Kernel } from '../kernel/kernel.ts';
import { MemoryEventBus } from '../platform/bus/memory/memory-event-bus.ts';
import { type Clock, systemClock } from '../platform/clock/clock.ts';
import type { KeelError } from '../platform/errors/keel-error.ts';
import type { LockHandle } from '../platform/files/lock-file.ts';
import { createId } from '../platform/ids/create-id.ts';
import type { Logger } from '../platform/observability/logger.ts';
import { SecretRedactor } from '../platform/observability/secret-redactor.ts';
import { SANDBOX_OFF_REPORT } from '../platform/sandbox/detect-sandbox.ts';
import { FINAL_RUN_STATUSES } from '../platform/storage/ports/run-store.ts';
import {
  openSqliteStorage,
  type SqliteStorage,
} from '../platform/storage/sqlite/sqlite-storage.ts';
import { createModelProviders, ModelService } from '../services/models/model-service.ts';
import type { RobotMqttLink } from '../services/robotics/robot-mqtt-link.ts';
import type { RobotService } from '../services/robotics/robot-service.ts';
import {
  createClockExecutor,
  logExecutor,
  randomExecutor,
} from '../services/system/system-executors.ts';
import { AgentWorkspaces } from '../services/tools/agent-workspaces.ts';
import { createCommandTools } from '../services/tools/builtin/command-tools.ts';
import { createFetchTool } from '../services/tools/builtin/fetch-tool.ts';
import { createFileTools } from '../services/tools/builtin/file-tools.ts';
import { createNotesTools } from '../services/tools/builtin/notes-tools.ts';
import {
  createProcessTools,
  sandboxedProcessLauncher,
} from '../services/tools/builtin/process-tools.ts';
import { ProcessSupervisor } from '../services/tools/processes/process-supervisor.ts';
import { RunTaint, toolApprovalSource } from '../services/tools/tool-approval-policy.ts';
import { type ToolDefinition, ToolRegistry } from '../services/tools/tool-registry.ts';
import { AgentRuntime } from './agent-runtime.ts';
import { AgentDeployer } from './agents/agent-deployer.ts';
import { ControlServer } from './control/control-server.ts';
import { KEEL_VERSION } from './keel-version.ts';
import { connectRobotMqtt, robotHealth, startRobot } from './robot-wiring.ts';
import { RUN_STATUS } from './runs/run-topics.ts';
import { createWorkerLauncher } from './worker/worker-launcher.ts';
import { workerFrameLimit } from './worker/worker-protocol.ts';

export interface ComponentHealth {
  readonly name: string;
  readonly ready: boolean;
  readonly detail: string;
}

export interface NodeHealth {
  readonly ready: boolean;
  readonly components: readonly ComponentHealth[];
}

export interface StartNodeOptions {
  readonly loaded: LoadedConfiguration;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Executors beyond the built-in ones (services register theirs here). */
  readonly executors?: readonly SyscallExecutor[];
  /** Tools beyond the built-in ones (the `tool.call` executor serves them). */
  readonly tools?: readonly ToolDefinition<never>[];
  /** Where the executable search path for sandbox tools comes from (default: PATH). */
  readonly searchPath?: string;
  /** Called once if a component fails beyond repair (the storage worker died). */
  readonly onFatal?: (error: KeelError) => void;
}

type Closer = () => Promise<void>;

/**
 * A running Keel node on the embedded default: SQLite storage, the in-process bus, the
 * kernel with its executors. Created by {@link startNode}; stopped by `close()`, which undoes
 * the start in reverse order.
 *
 * @example
 * ```ts
 * await using node = await startNode({ loaded: await loadConfiguration(), logger });
 * await node.kernel.gate.call({ agentId }, { kind: 'clock.now' });
 * ```
 */
export class KeelNode implements AsyncDisposable {
  readonly id: string;
  readonly loaded: LoadedConfiguration;
  readonly storage: SqliteStorage;
  readonly bus: MemoryEventBus;
  readonly kernel: Kernel;
  readonly models: ModelService;
  readonly runtime: AgentRuntime;
  readonly logger: Logger;
  /** The robot this node drives, when `[robotics]` is enabled. */
  readonly robot: RobotService | undefined;
  readonly #control: ControlServer;
  readonly #robotLink: RobotMqttLink | undefined;
  readonly #lock: LockHandle;
  #closing: Promise<void> | undefined;

  constructor(parts: {
    id: string;
    loaded: LoadedConfiguration;
    storage: SqliteStorage;
    bus: MemoryEventBus;
    kernel: Kernel;
    models: ModelService;
    runtime: AgentRuntime;
    control: ControlServer;
    logger: Logger;
    lock: LockHandle;
    robot: RobotService | undefined;
    robotLink: RobotMqttLink | undefined;
  }) {
    this.id = parts.id;
    this.loaded = parts.loaded;
    this.storage = parts.storage;
    this.bus = parts.bus;
    this.kernel = parts.kernel;
    this.models = parts.models;
    this.runtime = parts.runtime;
    this.#control = parts.control;
    this.logger = parts.logger;
    this.#lock = parts.lock;
    this.robot = parts.robot;
    this.#robotLink = parts.robotLink;
  }

  get actor(): string {
    return `node:${this.loaded.configuration.node.name}`;
  }

  health(): NodeHealth {
    const storage = this.storage.health();
    const components: ComponentHealth[] = [
      { name: 'storage', ready: storage.ready, detail: storage.detail },
      { name: 'bus', ready: !this.bus.closed, detail: this.bus.closed ? 'closed' : 'in-process' },
      {
        name: 'kernel',
        ready: this.kernel.ready,
        detail: this.kernel.ready
          ? `executors: ${this.kernel.executors.kinds().join(', ')}`
          : 'not started',
      },
      ...(this.robot === undefined ? [] : [robotHealth(this.robot)]),
      {
        name: 'node',
        ready: this.#closing === undefined,
        detail: this.#closing === undefined ? 'running' : 'stopping',
      },
    ];
    return { ready: components.every((component) => component.ready), components };
  }

  /** Stops the node: kernel timers, a `node.stop` audit entry, bus, storage, then the lock. */
  close(reason = 'requested'): Promise<void> {
    this.#closing ??= this.#doClose(reason);
    return this.#closing;
  }

  async #doClose(reason: string): Promise<void> {
    this.logger.info({ reason }, 'stopping');
    await closeInOrder(
      [
        () => this.#control.close(),
        async () => this.#robotLink?.close(),
        () => this.runtime.close(),
        // Before the kernel: the body reaches zero energy while its audit can still be written.
        async () => this.robot?.close(),
        () => this.kernel.close(),
        () =>
          this.kernel.audit
            .record({
              kind: 'node.stop',
              actor: this.actor,
              outcome: 'stopped',
              data: { nodeId: this.id, reason },
            })
            .then(() => undefined),
        () => this.bus.close(),
        () => this.storage.close(),
        () => this.#lock.release(),
      ],
      this.logger,
    );
    this.logger.info('stopped');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close('disposed');
  }
}

/**
 * Where a node's control socket lives: in its data directory, which only its user can enter.
 *
 * @example
 * ```ts
 * const client = await ControlClient.connect(controlSocketPath(configuration.dataDirectory));
 * ```
 */
export function controlSocketPath(dataDirectory: string): string {
  return join(dataDirectory, 'keel.sock');
}

/** Runs every step even if one fails; reports all failures and rethrows the first. */
async function closeInOrder(steps: readonly Closer[], logger: Logger): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    await step().catch((error: unknown) => failures.push(error));
  }
  for (const failure of failures)
    logger.error({ err: failure }, 'a component failed to stop cleanly');
  if (failures.length > 0) throw failures[0];
}

/**
 * Starts a node: creates the data directory if needed, takes its lock, opens and migrates
 * storage, starts the bus and kernel, registers executors, and audits the start (and a
 * configuration change since the last start). On any failure it undoes what it did.
 *
 * @example
 * ```ts
 * const node = await startNode({ loaded: await loadConfiguration(), logger });
 * try { console.log(node.health()); } finally { await node.close(); }
 * ```
 */
export async function startNode(options: StartNodeOptions): Promise<KeelNode> {
  const { loaded } = options;
  const { configuration } = loaded;
  const clock = options.clock ?? systemClock;
  const logger = options.logger.child({ component: 'node' });
  const auditKey = decodeAuditKey(loaded.secrets.require(AUDIT_KEY_SECRET).reveal());
  // Invalid providers (plain http off loopback, a missing API key secret) stop the start
  // before anything is written.
  const providers = createModelProviders(configuration.models, loaded.secrets);
  const closers: Closer[] = [];
  try {
    const lock: LockHandle = await claimDataDirectory(loaded);
    closers.push(() => lock.release());
    const storage = await openSqliteStorage({
      path: configuration.databaseFile,
      auditKey,
      synchronous: configuration.storage.synchronous,
      onFatal: (error) => {
        logger.fatal({ err: error }, 'storage failed');
        options.onFatal?.(error);
      },
    });
    closers.push(() => storage.close());
    const redactor = new SecretRedactor(loaded.secrets.values());
    const bus = new MemoryEventBus();
    closers.push(() => bus.close());
    const kernel = new Kernel({
      storage,
      bus,
      clock,
      logger: options.logger,
      redactor,
      auditKey,
      actor: `node:${configuration.node.name}`,
      approvals: configuration.approvals,
      gate: configuration.gate,
    });
    closers.push(() => kernel.close());
    const models = await ModelService.create({
      configuration: configuration.models,
      providers,
      budgets: kernel.budgets,
      logger: options.logger.child({ component: 'models' }),
    });
    closers.push(() => models.close());
    const modulePlaces = {
      dataDirectory: configuration.dataDirectory,
      modulesDirectory: join(configuration.dataDirectory, 'agents'),
    };
    const searchPath = options.searchPath ?? executableSearchPath();
    const workerFrameBytes = workerFrameLimit(configuration.gate.maxIntentBytes);
    const launcher = await createWorkerLauncher({
      configuration: configuration.runtime,
      maxFrameBytes: workerFrameBytes,
      modulePlaces,
      searchPath,
      logger: options.logger.child({ component: 'sandbox' }),
    });
    const workspaces = new AgentWorkspaces();
    const commandSettings = {
      report: async () => (await launcher.report) ?? SANDBOX_OFF_REPORT,
      searchPath,
      required: configuration.runtime.production,
      ...configuration.tools.commands,
    };
    const processes = new ProcessSupervisor(
      sandboxedProcessLauncher(workspaces, commandSettings),
      configuration.tools.processes,
    );
    closers.push(() => processes.close());
    const tools = new ToolRegistry([
      ...createNotesTools(storage.keyValues, clock),
      ...createFileTools(workspaces),
      ...createCommandTools(workspaces, commandSettings),
      ...createProcessTools(processes),
      createFetchTool(configuration.tools.fetch),
      ...(options.tools ?? []),
    ]);
    const robot = await startRobot({
      loaded,
      kernel,
      bus,
      keyValues: storage.keyValues,
      clock,
      logger: options.logger,
    });
    if (robot !== undefined) closers.push(() => robot.close());
    const taint = new RunTaint(storage.keyValues, () => clock.now());
    kernel.approvalPolicy.addSource('tool.call', toolApprovalSource(tools, taint));
    for (const executor of [
      createClockExecutor(clock),
      randomExecutor,
      logExecutor,
      tools.executor(configuration.gate.defaultTimeoutMs, (runId, tool) => taint.mark(runId, tool)),
      ...models.executors,
      ...(robot?.executors ?? []),
      ...(options.executors ?? []),
    ]) {
      kernel.registerExecutor(executor);
    }
    await kernel.start();
    launcher.sweepLeftovers();
    models.start();
    const runtime = new AgentRuntime({
      kernel,
      storage,
      bus,
      clock,
      logger: options.logger.child({ component: 'runtime' }),
      configuration: configuration.runtime,
      workerFrameBytes,
      deployer: new AgentDeployer({
        kernel,
        keyValues: storage.keyValues,
        configuration: configuration.agents,
        ...modulePlaces,
        maxWorkerMemoryMb: configuration.runtime.workerMemoryMb,
        toolNames: () => tools.names(),
      }),
      launch: launcher.launch,
      describeTools: (names) => tools.describe(names),
      assignWorkspace: (agentId, workspace) => workspaces.assign(agentId, workspace),
      actor: `node:${configuration.node.name}`,
    });
    closers.push(() => runtime.close());
    closers.push(await forgetEndedRuns(bus, taint, models, storage, options.logger));
    const robotLink = await connectRobotMqtt({
      robot,
      loaded,
      kernel,
      runtime,
      logger: options.logger,
    });
    if (robotLink !== undefined) closers.push(() => robotLink.close());

    const actor = `node:${configuration.node.name}`;
    let id = await storage.keyValues.get('node.id');
    if (typeof id !== 'string') {
      id = createId('node');
      await storage.keyValues.set('node.id', id, clock.now());
    }
    const previousDigest = await storage.keyValues.get('config.digest');
    if (previousDigest !== loaded.digest) {
      await kernel.audit.record({
        kind: 'config.change',
        actor,
        outcome: previousDigest === undefined ? 'initial' : 'changed',
        data: { from: previousDigest ?? null, to: loaded.digest, secrets: loaded.secrets.names() },
      });
      await storage.keyValues.set('config.digest', loaded.digest, clock.now());
    }
    await kernel.audit.record({
      kind: 'node.start',
      actor,
      outcome: 'started',
      data: {
        nodeId: id,
        version: KEEL_VERSION,
        pid: process.pid,
        node: process.version,
        dataDirectory: configuration.dataDirectory,
        configDigest: loaded.digest,
      },
    });
    await runtime.start();
    const control = await ControlServer.listen({
      approvals: kernel.approvals,
      path: controlSocketPath(configuration.dataDirectory),
      runtime,
      bus,
      logger,
      redactor,
      robot,
    });
    closers.push(() => control.close());
    logger.info({ nodeId: id, dataDirectory: configuration.dataDirectory }, 'node started');
    return new KeelNode({
      id,
      loaded,
      storage,
      bus,
      kernel,
      models,
      runtime,
      control,
      logger,
      lock,
      robot,
      robotLink,
    });
  } catch (error) {
    await closeInOrder([...closers].reverse(), logger).catch((closeError: unknown) =>
      logger.error({ err: closeError }, 'cleaning up after a failed start also failed'),
    );
    throw error;
  }
}

/**
 * Drops what the node keeps of runs while they go on once they end: their untrusted-content
 * marks (also, at start, of runs that ended while the node was down) and the conversation the
 * model layer holds for their next chat, so neither piles up. Resolves with the closer that
 * stops listening.
 */
async function forgetEndedRuns(
  bus: MemoryEventBus,
  taint: RunTaint,
  models: ModelService,
  storage: SqliteStorage,
  logger: Logger,
): Promise<Closer> {
  const listening = new AbortController();
  const statuses = bus.subscribe(RUN_STATUS, { signal: listening.signal });
  void (async () => {
    for await (const message of statuses) {
      if (!FINAL_RUN_STATUSES.includes(message.status)) continue;
      models.forgetRun(message.runId);
      await taint
        .forget(message.runId)
        .catch((error: unknown) =>
          logger.warn({ err: error, runId: message.runId }, 'could not forget a run taint'),
        );
    }
  })().catch((error: unknown) => {
    if (!listening.signal.aborted) logger.warn({ err: error }, 'stopped forgetting run taints');
  });
  await taint.forgetEnded(async (runId) => {
    const run = await storage.runs.get(runId);
    return run === undefined || FINAL_RUN_STATUSES.includes(run.status);
  });
  return async () => listening.abort();
}
