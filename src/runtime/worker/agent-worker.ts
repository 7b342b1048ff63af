import type { ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { SyscallIntent } from '../../kernel/gate/syscall.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { isKeelError, KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { ToolDescriptor } from './agent-program.ts';
import { encodeFrame, FrameDecoder, FrameWriter } from './frame-codec.ts';
import { WorkerOutputLog } from './worker-output-log.ts';
import {
  type HostMessage,
  type ProgramReference,
  parseWorkerMessage,
  WORKER_PROTOCOL_VERSION,
  type WorkerMessage,
} from './worker-protocol.ts';

/** A launched worker process and its IPC channel (see `launchSandboxedWorker`). */
export interface LaunchedProcess {
  readonly child: ChildProcess;
  readonly channel: Duplex;
  readonly applied: readonly string[];
  readonly missing: readonly { readonly layer: string; readonly reason: string }[];
  oomKills(): Promise<number>;
  dispose(): Promise<void>;
}

/** The gate as a worker uses it: identity comes from here, never from the worker. */
export interface SyscallPort {
  call(
    identity: { readonly agentId: string; readonly runId: string; readonly seq: number },
    intent: unknown,
  ): Promise<JsonValue>;
}

export interface RunAssignment {
  readonly runId: string;
  readonly program: ProgramReference;
  readonly task: JsonObject;
  readonly tools: readonly ToolDescriptor[];
  readonly settings: JsonObject;
  readonly model: string | null;
}

/** A syscall a run made, once the kernel answered (for step streams and counters). */
export interface StepEvent {
  readonly runId: string;
  readonly seq: number;
  readonly kind: string;
  readonly resource: string;
  readonly outcome: 'ok' | 'error';
  readonly code: string | null;
}

export type RunOutcome =
  | { readonly ok: true; readonly result: JsonValue }
  | { readonly ok: false; readonly error: KeelError };

/** Why a worker ended. */
export interface WorkerExit {
  readonly expected: boolean;
  readonly reason:
    | 'stopped'
    | 'exited'
    | 'watchdog'
    | 'protocol'
    | 'out-of-memory'
    | 'start-failed';
  readonly code: number | null;
  readonly signal: string | null;
  readonly detail: string;
  /** Runs that were active on it; they resume elsewhere. */
  readonly runs: readonly string[];
}

export interface AgentWorkerOptions {
  readonly agent: { readonly id: string; readonly name: string; readonly version: string };
  /**
   * Starts the process; `signal` aborts when the start is given up on (timeout or
   * `abandonStart`), so a launch still setting its sandbox up can stop there.
   */
  readonly launch: (signal: AbortSignal) => Promise<LaunchedProcess>;
  readonly gate: SyscallPort;
  readonly clock: Clock;
  readonly logger: Logger;
  /** A worker silent for longer is killed. */
  readonly watchdogTimeoutMs: number;
  /** How long a new worker may take from its launch to its hello. */
  readonly startTimeoutMs: number;
  /** The largest frame taken from the worker (`workerFrameLimit`); a larger one kills it. */
  readonly maxFrameBytes: number;
  readonly onStep: (event: StepEvent) => void;
  readonly onRunDone: (runId: string, outcome: RunOutcome) => void;
  readonly onExit: (exit: WorkerExit) => void;
}

const MAX_CALLS_IN_FLIGHT = 1024;
/**
 * Bytes written to a worker that it has not read yet, past which the node reads nothing more
 * from it until it catches up: a worker that sends calls and never reads the answers would
 * otherwise make the node buffer answers without limit. While it is held, its heartbeats go
 * unread too, so one that never reads is killed by the watchdog.
 */
const MAX_UNREAD_BYTES = 1024 * 1024;
/** How much of a worker's stdout and stderr reaches the log. */
const OUTPUT_LOG_LIMITS = { bytesPerWindow: 64 * 1024, windowMs: 10_000 };

interface RunState {
  seq: number;
  cancelled: boolean;
}

/**
 * The host's side of one agent worker process: launches it, binds its identity (agent from
 * the launch, run from the host's own assignment, sequence numbers counted here in the order
 * calls arrive), forwards its syscalls to the gate, watches its heartbeats, and reports its
 * runs' ends and its own exit exactly once.
 *
 * @example
 * ```ts
 * const worker = new AgentWorker({ agent, launch, gate: kernel.gate, clock, logger, watchdogTimeoutMs: 10_000, startTimeoutMs: 10_000, onStep, onRunDone, onExit });
 * await worker.start();
 * worker.assign({ runId, program: { builtin: 'tool-loop' }, task: { prompt: 'hi' }, tools: [], settings: {}, model: 'default' });
 * ```
 */
export class AgentWorker {
  readonly #options: AgentWorkerOptions;
  readonly #runs = new Map<string, RunState>();
  readonly #held: Array<() => void> = [];
  #process: LaunchedProcess | undefined;
  /** Frames to the worker, those of one callback and its promise reactions written together. */
  #writer: FrameWriter | undefined;
  #lastSeen = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #paused = false;
  /** Whether reading from the worker waits for it to read what it was sent. */
  #inputHeld = false;
  #exited = false;
  #stopping = false;
  #exitReason: WorkerExit['reason'] | undefined;
  #exitDetail = '';
  #pid: number | null = null;
  #memory = { heapUsed: 0, rss: 0 };
  #ended: Promise<void> | undefined;
  /** While starting: ends the start at once (see `abandonStart`). */
  #giveUpStart: ((abandoned: string | null) => void) | undefined;

  constructor(options: AgentWorkerOptions) {
    this.#options = options;
  }

  get pid(): number | null {
    return this.#pid;
  }

  get runIds(): readonly string[] {
    return [...this.#runs.keys()];
  }

  get memory(): { readonly heapUsed: number; readonly rss: number } {
    return this.#memory;
  }

  get layers(): { readonly applied: readonly string[]; readonly missing: readonly string[] } {
    return {
      applied: this.#process?.applied ?? [],
      missing: (this.#process?.missing ?? []).map((entry) => entry.layer),
    };
  }

  /**
   * Launches the process and waits for its hello, or fails with why it did not come: the
   * launch failed, the process ended, the start timeout passed (the launch and the hello
   * together), or `abandonStart` was called. A launch that finishes after its start was given
   * up on has its process disposed of.
   */
  async start(): Promise<void> {
    // Why the start was given up on: `null` for the timeout, else the abandoning reason.
    const { promise: givenUp, resolve } = Promise.withResolvers<string | null>();
    const launch = new AbortController();
    const giveUp = (why: string | null): void => {
      resolve(why);
      launch.abort(
        new KeelError(
          'KEEL_ABORTED',
          `the start of ${this.#options.agent.name} was given up on: ${why ?? 'start timeout'}`,
        ),
      );
    };
    this.#giveUpStart = giveUp;
    const timer = setTimeout(() => giveUp(null), this.#options.startTimeoutMs);
    try {
      await this.#start(givenUp, launch.signal);
    } finally {
      clearTimeout(timer);
      this.#giveUpStart = undefined;
    }
  }

  /** Gives up on a start in progress at once (an operator stopped the agent meanwhile). */
  abandonStart(reason: string): void {
    this.#giveUpStart?.(reason);
  }

  async #start(givenUp: Promise<string | null>, signal: AbortSignal): Promise<void> {
    const timeoutMs = this.#options.startTimeoutMs;
    const launching = this.#options.launch(signal);
    const first = await Promise.race([
      launching.then((launched) => ({ launched })),
      givenUp.then((why) => ({ why })),
    ]);
    if ('why' in first) {
      void launching.then(
        (late) =>
          late
            .dispose()
            .catch((error: unknown) =>
              this.#options.logger.warn({ err: error }, 'cleaning up a late worker launch failed'),
            ),
        () => undefined,
      );
      throw new KeelError(
        'KEEL_WORKER_CRASHED',
        `the worker for ${this.#options.agent.name} did not start: ${
          first.why ?? `its launch took longer than the start timeout (${timeoutMs} ms)`
        }`,
      );
    }
    const { launched } = first;
    this.#process = launched;
    this.#writer = new FrameWriter(launched.channel);
    this.#pid = launched.child.pid ?? null;
    this.#lastSeen = this.#options.clock.monotonic();
    const decoder = new FrameDecoder(this.#options.maxFrameBytes);
    let hello: (() => void) | undefined;
    const greeted = new Promise<void>((resolve) => {
      hello = resolve;
    });
    const ended = new Promise<void>((resolve) => {
      launched.child.once('exit', (code, signal) => {
        void this.#handleExit(code, signal).finally(resolve);
      });
    });
    this.#ended = ended;
    const output = new WorkerOutputLog(
      this.#options.logger.child({ agent: this.#options.agent.name }),
      this.#options.clock,
      OUTPUT_LOG_LIMITS,
    );
    launched.child.stderr?.on('data', (chunk: Buffer) => output.write('stderr', chunk));
    launched.child.stdout?.on('data', (chunk: Buffer) => output.write('stdout', chunk));
    launched.channel.on('error', (error) => {
      if (!this.#exited) this.#options.logger.debug({ err: error }, 'worker channel error');
    });
    launched.channel.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        this.#violation(toKeelError(error, 'KEEL_WORKER_PROTOCOL'));
        return;
      }
      for (const raw of messages) {
        let message: WorkerMessage;
        try {
          message = parseWorkerMessage(raw);
        } catch (error) {
          this.#violation(toKeelError(error, 'KEEL_WORKER_PROTOCOL'));
          return;
        }
        this.#lastSeen = this.#options.clock.monotonic();
        if (message.type === 'hello') {
          if (message.protocol !== WORKER_PROTOCOL_VERSION) {
            this.#violation(
              new KeelError(
                'KEEL_WORKER_PROTOCOL',
                `the worker speaks protocol ${message.protocol}, not ${WORKER_PROTOCOL_VERSION}`,
              ),
            );
            return;
          }
          hello?.();
        } else {
          this.#handle(message);
        }
      }
    });
    const second = await Promise.race([
      greeted.then(() => ({ outcome: 'hello' as const })),
      ended.then(() => ({ outcome: 'ended' as const })),
      givenUp.then((why) => ({ outcome: 'given up' as const, why })),
    ]);
    if (second.outcome !== 'hello') {
      if (second.outcome === 'given up') {
        this.kill(
          'start-failed',
          second.why ?? `no hello within the start timeout (${timeoutMs} ms)`,
        );
      }
      await ended;
      throw new KeelError(
        'KEEL_WORKER_CRASHED',
        `the worker for ${this.#options.agent.name} did not start: ${this.#exitDetail || second.outcome}`,
      );
    }
    const checkEveryMs = Math.max(50, Math.floor(this.#options.watchdogTimeoutMs / 4));
    let lastCheck = this.#options.clock.monotonic();
    this.#watchdog = setInterval(() => {
      const now = this.#options.clock.monotonic();
      // Late: the node's own event loop was held up, and the worker's heartbeats since then
      // wait unread. It is not the worker that went silent: they are read before the next check.
      const late = now - lastCheck > 2 * checkEveryMs;
      lastCheck = now;
      if (late) return;
      const silentMs = now - this.#lastSeen;
      if (silentMs > this.#options.watchdogTimeoutMs) {
        this.kill('watchdog', `no heartbeat for ${Math.round(silentMs)} ms`);
      }
    }, checkEveryMs);
    this.#watchdog.unref();
  }

  /** Gives the worker a run to execute (a new run, or one to resume by replay). */
  assign(run: RunAssignment): void {
    if (this.#exited || this.#stopping) {
      throw new KeelError('KEEL_AGENT_NOT_RUNNING', 'the worker is not running');
    }
    this.#runs.set(run.runId, { seq: 0, cancelled: false });
    this.#send({
      type: 'start',
      runId: run.runId,
      agent: this.#options.agent,
      program: run.program,
      task: run.task,
      tools: run.tools,
      settings: run.settings,
      model: run.model,
    });
  }

  /** Aborts a run in the worker; its further syscalls are refused. */
  cancel(runId: string, reason: string): void {
    const run = this.#runs.get(runId);
    if (run === undefined) return;
    run.cancelled = true;
    this.#send({ type: 'cancel', runId, reason });
  }

  /** Holds the worker's syscalls (they wait, unanswered) until `resume`. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    for (const release of this.#held.splice(0)) release();
  }

  /** Asks the worker to stop, waits up to `graceMs`, then kills it. */
  async stop(graceMs: number): Promise<void> {
    if (this.#process === undefined || this.#exited) return;
    this.#stopping = true;
    this.#exitReason ??= 'stopped';
    this.#send({ type: 'shutdown' });
    this.#process.channel.end();
    const timer = setTimeout(
      () => this.kill('stopped', 'did not stop within the grace period'),
      graceMs,
    );
    await this.#ended;
    clearTimeout(timer);
  }

  /** Kills the worker now (SIGKILL to its whole process tree). */
  kill(reason: WorkerExit['reason'], detail: string): void {
    if (this.#process === undefined || this.#exited) return;
    this.#exitReason ??= reason;
    this.#exitDetail ||= detail;
    const pid = this.#process.child.pid;
    try {
      if (pid !== undefined) process.kill(-pid, 'SIGKILL');
    } catch {
      // The group is gone already or never existed (not detached): kill the child itself.
      this.#process.child.kill('SIGKILL');
    }
  }

  /** Resolves when the worker process has exited and its exit has been reported. */
  get ended(): Promise<void> {
    return this.#ended ?? Promise.resolve();
  }

  #send(message: HostMessage): void {
    const channel = this.#process?.channel;
    if (channel === undefined || this.#exited || channel.destroyed || !channel.writable) return;
    try {
      this.#writer?.write(encodeFrame(message, 64 * 1024 * 1024));
      if (!this.#inputHeld && channel.writableLength > MAX_UNREAD_BYTES) {
        this.#inputHeld = true;
        channel.pause();
        channel.once('drain', () => {
          this.#inputHeld = false;
          channel.resume();
        });
      }
    } catch (error) {
      // A result larger than a frame can carry is sent as an error instead.
      if (message.type === 'result' && message.ok) {
        this.#send({
          type: 'result',
          runId: message.runId,
          call: message.call,
          ok: false,
          error: toKeelError(error).toJSON() as unknown as JsonObject,
        });
        return;
      }
      this.#options.logger.error({ err: error }, 'could not write to the worker');
    }
  }

  #handle(message: Exclude<WorkerMessage, { type: 'hello' }>): void {
    switch (message.type) {
      case 'heartbeat':
        this.#memory = { heapUsed: message.heapUsed, rss: message.rss };
        return;
      case 'syscall': {
        const run = this.#runs.get(message.runId);
        if (run === undefined) {
          this.#reply(message.runId, message.call, {
            ok: false,
            error: new KeelError(
              'KEEL_IDENTITY_UNKNOWN',
              `run ${message.runId} is not assigned here`,
            ),
          });
          return;
        }
        if (run.cancelled) {
          this.#reply(message.runId, message.call, {
            ok: false,
            error: new KeelError('KEEL_RUN_CANCELLED', `run ${message.runId} was cancelled`),
          });
          return;
        }
        if (this.#inFlight >= MAX_CALLS_IN_FLIGHT) {
          this.#violation(
            new KeelError(
              'KEEL_WORKER_PROTOCOL',
              `the worker has more than ${MAX_CALLS_IN_FLIGHT} syscalls in flight`,
            ),
          );
          return;
        }
        // The sequence number is assigned here, in arrival order: the worker never names it.
        run.seq += 1;
        const seq = run.seq;
        this.#inFlight += 1;
        const forward = (): void => {
          void this.#forward(message.runId, seq, message.call, message.intent);
        };
        if (this.#paused) this.#held.push(forward);
        else forward();
        return;
      }
      case 'done': {
        if (!this.#runs.has(message.runId)) {
          this.#violation(
            new KeelError(
              'KEEL_WORKER_PROTOCOL',
              `the worker ended run ${message.runId} it was not given`,
            ),
          );
          return;
        }
        this.#runs.delete(message.runId);
        this.#options.onRunDone(
          message.runId,
          message.ok
            ? { ok: true, result: message.result as JsonValue }
            : { ok: false, error: KeelError.fromJSON(message.error) },
        );
        return;
      }
    }
  }

  async #forward(runId: string, seq: number, call: number, intent: SyscallIntent): Promise<void> {
    let outcome: { ok: true; value: JsonValue } | { ok: false; error: KeelError };
    try {
      const value = await this.#options.gate.call(
        { agentId: this.#options.agent.id, runId, seq },
        intent,
      );
      outcome = { ok: true, value };
    } catch (error) {
      outcome = { ok: false, error: isKeelError(error) ? error : toKeelError(error) };
    } finally {
      this.#inFlight -= 1;
    }
    this.#options.onStep({
      runId,
      seq,
      kind: String(intent.kind),
      resource: String(intent.resource ?? ''),
      outcome: outcome.ok ? 'ok' : 'error',
      code: outcome.ok ? null : outcome.error.code,
    });
    this.#reply(runId, call, outcome);
  }

  #reply(
    runId: string,
    call: number,
    outcome: { ok: true; value: JsonValue } | { ok: false; error: KeelError },
  ): void {
    if (outcome.ok) this.#send({ type: 'result', runId, call, ok: true, value: outcome.value });
    else
      this.#send({
        type: 'result',
        runId,
        call,
        ok: false,
        error: outcome.error.toJSON() as unknown as JsonObject,
      });
  }

  #violation(error: KeelError): void {
    this.#options.logger.error(
      { agent: this.#options.agent.name, err: error },
      'the agent worker broke the protocol; stopping it',
    );
    this.kill('protocol', error.message);
  }

  async #handleExit(code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    this.#exited = true;
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#held.length = 0;
    const process = this.#process;
    let oomKills = 0;
    if (process !== undefined) {
      oomKills = await process.oomKills().catch((error: unknown) => {
        this.#options.logger.warn({ err: error }, 'could not read the worker cgroup OOM count');
        return 0;
      });
      await process
        .dispose()
        .catch((error: unknown) =>
          this.#options.logger.warn({ err: error }, 'cleaning up a worker sandbox failed'),
        );
    }
    let reason = this.#exitReason ?? 'exited';
    if (oomKills > 0 && reason === 'exited') reason = 'out-of-memory';
    const detail =
      this.#exitDetail ||
      (reason === 'out-of-memory'
        ? 'the worker went over its memory cap and was killed'
        : `exit code ${code ?? 'none'}, signal ${signal ?? 'none'}`);
    const runs = [...this.#runs.keys()];
    this.#runs.clear();
    this.#options.onExit({
      expected: reason === 'stopped',
      reason,
      code,
      signal,
      detail,
      runs,
    });
  }
}
