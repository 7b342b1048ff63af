import { randomUUID } from 'node:crypto';
import { isKeelError, KeelError } from '../../../platform/errors/keel-error.ts';
import type {
  SandboxedCommandResult,
  SandboxedProcess,
} from '../../../platform/sandbox/command-sandbox.ts';
import { ProcessLog, type ProcessLogPage } from './process-log.ts';

/** Starts one sandboxed command for an agent (the command sandbox in its workspace). */
export type ProcessLauncher = (request: {
  readonly agentId: string;
  readonly argv: readonly string[];
  readonly lifetimeMs: number;
  readonly onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}) => Promise<SandboxedProcess>;

export interface ProcessSupervisorSettings {
  /** Processes alive at once per agent. */
  readonly maxPerAgent: number;
  /** A process (each start of it) is killed after this long. */
  readonly lifetimeMs: number;
  /** Newest output bytes kept per process. */
  readonly logBytes: number;
  /** How long `stop` waits after its signal before SIGKILL. */
  readonly stopGraceMs: number;
}

/** When a process that ended is started again. */
export type RestartPolicy = 'never' | 'on-failure' | 'always';

export interface ProcessStartRequest {
  readonly agentId: string;
  /** The command line as given (shown in lists). */
  readonly command: string;
  readonly argv: readonly string[];
  readonly name?: string;
  /** Text the process prints once it is ready (its health check at every start). */
  readonly readyText?: string;
  readonly readyTimeoutMs?: number;
  readonly restart?: RestartPolicy;
  readonly maxRestarts?: number;
}

/**
 * `starting`: waiting for its ready text; `running`: up (and ready when it has a ready text);
 * `unhealthy`: up, but its ready text did not come in time; `restarting`: ended, starts again
 * after a pause; `exited`: ended with status 0; `failed`: ended otherwise (or could not start);
 * `stopped`: ended because it was stopped.
 */
export type ProcessState =
  | 'starting'
  | 'running'
  | 'unhealthy'
  | 'restarting'
  | 'exited'
  | 'failed'
  | 'stopped';

/** What an agent sees of one of its processes. */
export interface ProcessView {
  readonly id: string;
  readonly name: string;
  readonly command: string;
  readonly state: ProcessState;
  readonly restarts: number;
  readonly restart: RestartPolicy;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Why it ended or is unhealthy, when Keel knows better than the exit status. */
  readonly reason: string | null;
  /** Bytes of output so far (the end of `process_logs`). */
  readonly logBytes: number;
  readonly sandbox: readonly string[];
}

const LIVE: ReadonlySet<ProcessState> = new Set(['starting', 'running', 'unhealthy', 'restarting']);
const DEFAULT_READY_TIMEOUT_MS = 30_000;
const RESTART_PAUSE_MS = 250;
const MAX_RESTART_PAUSE_MS = 5000;
/** Ended processes kept per agent (for their logs) before the oldest is forgotten. */
const ENDED_KEPT = 16;

interface Managed {
  readonly id: string;
  readonly agentId: string;
  readonly request: ProcessStartRequest;
  readonly restart: RestartPolicy;
  readonly maxRestarts: number;
  readonly log: ProcessLog;
  state: ProcessState;
  restarts: number;
  startedAt: number;
  endedAt: number | undefined;
  exit: { code: number | null; signal: string | null } | undefined;
  reason: string | undefined;
  sandbox: readonly string[];
  current: SandboxedProcess | undefined;
  stopping: boolean;
  timer: NodeJS.Timeout | undefined;
  readonly listeners: Set<() => void>;
}

/**
 * The long-running processes agents start (a dev server, a watcher): each in its own command
 * sandbox, its output kept in a ring for `logs`, its ready text watched as a health check, and
 * restarted by its policy (`on-failure`, `always`; at most `maxRestarts` times, with a growing
 * pause). An agent sees and signals only its own processes, by Keel's id — never by pid — and a
 * signal reaches only the processes of that sandbox (see `SandboxedProcess.signal`). Everything
 * dies with the node.
 *
 * @example
 * ```ts
 * const supervisor = new ProcessSupervisor(launch, settings);
 * const server = await supervisor.start({ agentId, command: 'node server.js', argv: ['node', 'server.js'], readyText: 'listening' });
 * await supervisor.stop(agentId, server.id);
 * ```
 */
export class ProcessSupervisor {
  readonly #launch: ProcessLauncher;
  readonly #settings: ProcessSupervisorSettings;
  readonly #processes = new Map<string, Managed>();
  #closed = false;

  constructor(launch: ProcessLauncher, settings: ProcessSupervisorSettings) {
    this.#launch = launch;
    this.#settings = settings;
  }

  /**
   * Starts a process and resolves once it is up: when it has a ready text, once that text
   * came, the ready timeout passed (`unhealthy`) or it ended.
   */
  async start(request: ProcessStartRequest): Promise<ProcessView> {
    if (this.#closed) throw new KeelError('KEEL_SHUTTING_DOWN', 'the node is stopping');
    const live = this.#of(request.agentId).filter((managed) => LIVE.has(managed.state));
    if (live.length >= this.#settings.maxPerAgent) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        `this agent has ${live.length} processes running, the most allowed; stop one first (process_stop)`,
        { details: { rule: 'process-limit', limit: this.#settings.maxPerAgent } },
      );
    }
    this.#forgetOldEnded(request.agentId);
    const id = `proc_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const managed: Managed = {
      id,
      agentId: request.agentId,
      request,
      restart: request.restart ?? 'never',
      maxRestarts: request.maxRestarts ?? 3,
      log: new ProcessLog(this.#settings.logBytes),
      state: 'starting',
      restarts: 0,
      startedAt: Date.now(),
      endedAt: undefined,
      exit: undefined,
      reason: undefined,
      sandbox: [],
      current: undefined,
      stopping: false,
      timer: undefined,
      listeners: new Set(),
    };
    this.#processes.set(id, managed);
    await this.#launchOnce(managed);
    if (managed.state === 'starting') {
      await this.#until(managed, (state) => state !== 'starting');
    }
    return view(managed);
  }

  /** The agent's processes, newest first. */
  list(agentId: string): readonly ProcessView[] {
    return this.#of(agentId)
      .sort((left, right) => right.startedAt - left.startedAt)
      .map(view);
  }

  /** One of the agent's processes. */
  show(agentId: string, id: string): ProcessView {
    return view(this.#find(agentId, id));
  }

  /** A page of the process's output (both streams, in order), from `offset`. */
  logs(agentId: string, id: string, offset: number, limit: number): ProcessLogPage {
    return this.#find(agentId, id).log.read(offset, limit);
  }

  /** Sends a signal to the process (and what it started); resolves with how many got it. */
  async signal(agentId: string, id: string, signal: NodeJS.Signals): Promise<number> {
    const managed = this.#find(agentId, id);
    const current = managed.current;
    if (current === undefined || current.ended) {
      throw new KeelError('KEEL_CONFLICT', `process ${id} is not running (${managed.state})`, {
        details: { id, state: managed.state },
      });
    }
    return current.signal(signal);
  }

  /**
   * Stops the process for good: `signal` (SIGTERM by default), then SIGKILL after the grace
   * period. A process that has ended already is left as it is.
   */
  async stop(
    agentId: string,
    id: string,
    options: { readonly signal?: NodeJS.Signals; readonly graceMs?: number } = {},
  ): Promise<ProcessView> {
    const managed = this.#find(agentId, id);
    await this.#stop(managed, options.signal ?? 'SIGTERM', options.graceMs);
    return view(managed);
  }

  /** Stops every process (the node is stopping); no new one starts after this. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#processes.values()].map((managed) => this.#stop(managed, 'SIGTERM', undefined)),
    );
  }

  async #stop(
    managed: Managed,
    signal: NodeJS.Signals,
    graceMs = this.#settings.stopGraceMs,
  ): Promise<void> {
    if (!LIVE.has(managed.state)) return;
    managed.stopping = true;
    clearTimeout(managed.timer);
    const current = managed.current;
    if (current === undefined || current.ended) {
      // Between two starts: nothing runs, and nothing will.
      this.#ended(managed, 'stopped', managed.exit, 'stopped while waiting to restart');
      return;
    }
    try {
      await current.signal(signal);
    } catch (error) {
      // No freezer here: only a kill is safe.
      if (!isKeelError(error) || error.code !== 'KEEL_SANDBOX_UNAVAILABLE') throw error;
      await current.signal('SIGKILL');
    }
    const ended = await Promise.race([
      current.result.then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), graceMs)),
    ]);
    if (!ended) await current.signal('SIGKILL');
    await this.#until(managed, (state) => !LIVE.has(state));
  }

  async #launchOnce(managed: Managed): Promise<void> {
    const { request } = managed;
    const readyText = request.readyText === undefined ? undefined : Buffer.from(request.readyText);
    this.#set(managed, readyText === undefined ? 'running' : 'starting');
    managed.exit = undefined;
    managed.reason = undefined;
    let handle: SandboxedProcess;
    try {
      handle = await this.#launch({
        agentId: managed.agentId,
        argv: request.argv,
        lifetimeMs: this.#settings.lifetimeMs,
        onOutput: (_stream, chunk) => {
          managed.log.append(chunk);
          if (readyText !== undefined && managed.state === 'starting') {
            const recent = managed.log.tail(readyText.length + chunk.length);
            if (recent.includes(readyText)) this.#set(managed, 'running');
          }
        },
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#note(managed, `could not start: ${message}`);
      this.#ended(managed, 'failed', undefined, `could not start: ${message}`);
      return;
    }
    managed.current = handle;
    managed.sandbox = handle.applied;
    // Stopped (or the node closed) while it was being started: it ends at once.
    if (managed.stopping || this.#closed) void handle.signal('SIGKILL');
    if (readyText !== undefined) {
      const timeoutMs = request.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
      managed.timer = setTimeout(() => {
        if (managed.state !== 'starting' || managed.current !== handle) return;
        const reason = `"${request.readyText}" did not appear within ${timeoutMs} ms`;
        managed.reason = reason;
        this.#note(managed, `unhealthy: ${reason}`);
        this.#set(managed, 'unhealthy');
        // A process that never became healthy is restarted when its policy restarts at all.
        if (managed.restart !== 'never') void handle.signal('SIGKILL');
      }, timeoutMs);
    }
    void handle.result.then(
      (result) => this.#exited(managed, handle, result),
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        this.#ended(managed, 'failed', undefined, message);
      },
    );
  }

  #exited(managed: Managed, handle: SandboxedProcess, result: SandboxedCommandResult): void {
    if (managed.current !== handle) return;
    clearTimeout(managed.timer);
    const exit = { code: result.exitCode, signal: result.signal };
    const status = exit.code === null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
    this.#note(managed, `ended with ${status}`);
    if (managed.stopping) {
      this.#ended(managed, 'stopped', exit, undefined);
      return;
    }
    if (result.timedOut) {
      const reason = `killed at its lifetime of ${this.#settings.lifetimeMs} ms`;
      this.#ended(managed, 'failed', exit, reason);
      return;
    }
    const unhealthy = managed.state === 'unhealthy';
    const failed = exit.code !== 0 || unhealthy;
    const wanted = managed.restart === 'always' || (managed.restart === 'on-failure' && failed);
    if (!wanted || this.#closed || managed.restarts >= managed.maxRestarts) {
      const reason =
        wanted && managed.restarts >= managed.maxRestarts
          ? `gave up after ${managed.restarts} restarts`
          : managed.reason;
      this.#ended(managed, failed ? 'failed' : 'exited', exit, reason);
      return;
    }
    managed.exit = exit;
    this.#set(managed, 'restarting');
    const pause = Math.min(RESTART_PAUSE_MS * 2 ** managed.restarts, MAX_RESTART_PAUSE_MS);
    managed.timer = setTimeout(() => {
      if (managed.stopping || this.#closed) return;
      managed.restarts += 1;
      this.#note(managed, `restart ${managed.restarts} of ${managed.maxRestarts}`);
      void this.#launchOnce(managed);
    }, pause);
  }

  #ended(
    managed: Managed,
    state: 'exited' | 'failed' | 'stopped',
    exit: Managed['exit'],
    reason: string | undefined,
  ): void {
    clearTimeout(managed.timer);
    managed.exit = exit;
    managed.reason = reason;
    managed.endedAt = Date.now();
    this.#set(managed, state);
  }

  /** Writes Keel's own line into the process's log, so a reader sees restarts in place. */
  #note(managed: Managed, text: string): void {
    managed.log.append(Buffer.from(`\n[keel] ${text}\n`));
  }

  #set(managed: Managed, state: ProcessState): void {
    managed.state = state;
    for (const listener of [...managed.listeners]) listener();
  }

  #until(managed: Managed, done: (state: ProcessState) => boolean): Promise<void> {
    if (done(managed.state)) return Promise.resolve();
    return new Promise((resolve) => {
      const listener = (): void => {
        if (!done(managed.state)) return;
        managed.listeners.delete(listener);
        resolve();
      };
      managed.listeners.add(listener);
    });
  }

  #of(agentId: string): Managed[] {
    return [...this.#processes.values()].filter((managed) => managed.agentId === agentId);
  }

  #find(agentId: string, id: string): Managed {
    const managed = this.#processes.get(id);
    // Another agent's process is reported as missing: its existence is not this agent's to know.
    if (managed === undefined || managed.agentId !== agentId) {
      throw new KeelError('KEEL_NOT_FOUND', `there is no process ${id}; process_list shows yours`, {
        details: { id },
      });
    }
    return managed;
  }

  #forgetOldEnded(agentId: string): void {
    const ended = this.#of(agentId)
      .filter((managed) => !LIVE.has(managed.state))
      .sort((left, right) => (left.endedAt ?? 0) - (right.endedAt ?? 0));
    for (const managed of ended.slice(0, Math.max(0, ended.length - ENDED_KEPT + 1))) {
      this.#processes.delete(managed.id);
    }
  }
}

function view(managed: Managed): ProcessView {
  return {
    id: managed.id,
    name: managed.request.name ?? managed.request.argv[0] ?? managed.id,
    command: managed.request.command,
    state: managed.state,
    restarts: managed.restarts,
    restart: managed.restart,
    startedAt: new Date(managed.startedAt).toISOString(),
    endedAt: managed.endedAt === undefined ? null : new Date(managed.endedAt).toISOString(),
    exitCode: managed.exit?.code ?? null,
    signal: managed.exit?.signal ?? null,
    reason: managed.reason ?? null,
    logBytes: managed.log.total,
    sandbox: managed.sandbox,
  };
}
