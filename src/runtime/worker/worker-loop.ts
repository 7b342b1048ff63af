import type { Readable, Writable } from 'node:stream';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { AgentContext, AgentProgram, AgentTask, ChatResult } from './agent-program.ts';
import { encodeFrame, FrameDecoder, FrameWriter } from './frame-codec.ts';
import {
  type HostMessage,
  type ProgramReference,
  WORKER_PROTOCOL_VERSION,
} from './worker-protocol.ts';

export interface WorkerLoopOptions {
  readonly input: Readable;
  readonly output: Writable;
  /** Built-in programs by name. */
  readonly programs: ReadonlyMap<string, AgentProgram>;
  /** Loads a program module named by a manifest (its default export). */
  readonly loadModule: (path: string) => Promise<AgentProgram>;
  readonly heartbeatIntervalMs: number;
  /** The largest frame the host accepts (see `workerFrameLimit`). */
  readonly maxFrameBytes: number;
  readonly pid: number;
  readonly memoryUsage: () => { readonly heapUsed: number; readonly rss: number };
}

interface PendingCall {
  readonly resolve: (value: JsonValue) => void;
  readonly reject: (error: KeelError) => void;
}

interface ActiveRun {
  readonly controller: AbortController;
  readonly calls: Map<number, PendingCall>;
}

const HOST_FRAME_LIMIT = 64 * 1024 * 1024;

/**
 * The worker's side of the protocol: announces itself, sends heartbeats, runs each `start`
 * as an agent program with a context whose every effect is a syscall frame to the host, and
 * reports each run's end. Resolves when the host says `shutdown` or closes the channel.
 *
 * @example
 * ```ts
 * await runWorkerLoop({ input: channel, output: channel, programs, loadModule, heartbeatIntervalMs: 1000, pid: process.pid, memoryUsage: () => process.memoryUsage() });
 * ```
 */
export function runWorkerLoop(options: WorkerLoopOptions): Promise<void> {
  const runs = new Map<string, ActiveRun>();
  const decoder = new FrameDecoder(HOST_FRAME_LIMIT);
  let nextCall = 0;

  const writer = new FrameWriter(options.output);
  const send = (message: unknown): void => {
    writer.write(encodeFrame(message, options.maxFrameBytes));
  };

  const heartbeat = setInterval(() => {
    const usage = options.memoryUsage();
    send({ type: 'heartbeat', heapUsed: usage.heapUsed, rss: usage.rss });
  }, options.heartbeatIntervalMs);

  const syscall = (runId: string, kind: string, resource: string, params: JsonObject) =>
    new Promise<JsonValue>((resolve, reject) => {
      const run = runs.get(runId);
      if (run === undefined) {
        reject(new KeelError('KEEL_RUN_CANCELLED', `run ${runId} is not active in this worker`));
        return;
      }
      if (run.controller.signal.aborted) {
        reject(toError(run.controller.signal.reason));
        return;
      }
      const call = nextCall++;
      // Larger than the host takes: refused here, as the gate would refuse it.
      send({ type: 'syscall', runId, call, intent: { kind, resource, params } });
      run.calls.set(call, { resolve, reject });
    });

  const start = async (message: Extract<HostMessage, { type: 'start' }>): Promise<void> => {
    const controller = new AbortController();
    runs.set(message.runId, { controller, calls: new Map() });
    let outcome: { ok: true; result: JsonValue } | { ok: false; error: JsonObject };
    try {
      const program = await resolveProgram(message.program, options);
      const context = createContext(message, controller.signal, (kind, resource, params) =>
        syscall(message.runId, kind, resource, params),
      );
      const result = await program.run(context);
      outcome = { ok: true, result: result ?? null };
    } catch (error) {
      outcome = { ok: false, error: errorJson(error) };
    }
    runs.delete(message.runId);
    try {
      send({ type: 'done', runId: message.runId, ...outcome });
    } catch (error) {
      // A result larger than the host takes ends the run failed with that error instead.
      send({ type: 'done', runId: message.runId, ok: false, error: errorJson(error) });
    }
  };

  return new Promise<void>((resolve, reject) => {
    const finish = (): void => {
      clearInterval(heartbeat);
      for (const run of runs.values()) {
        run.controller.abort(new KeelError('KEEL_SHUTTING_DOWN', 'the worker is stopping'));
      }
      resolve();
    };
    options.input.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        clearInterval(heartbeat);
        reject(error);
        return;
      }
      for (const raw of messages) {
        const message = raw as HostMessage;
        switch (message.type) {
          case 'start':
            void start(message);
            break;
          case 'result': {
            const pending = runs.get(message.runId)?.calls.get(message.call);
            if (pending === undefined) break;
            runs.get(message.runId)?.calls.delete(message.call);
            if (message.ok) pending.resolve(message.value);
            else pending.reject(KeelError.fromJSON(message.error));
            break;
          }
          case 'cancel': {
            const run = runs.get(message.runId);
            if (run === undefined) break;
            const reason = new KeelError('KEEL_RUN_CANCELLED', message.reason);
            run.controller.abort(reason);
            for (const pending of run.calls.values()) pending.reject(reason);
            run.calls.clear();
            break;
          }
          case 'shutdown':
            finish();
            break;
        }
      }
    });
    options.input.on('end', finish);
    options.input.on('error', (error) => {
      clearInterval(heartbeat);
      reject(error);
    });
    send({ type: 'hello', protocol: WORKER_PROTOCOL_VERSION, pid: options.pid });
  });
}

async function resolveProgram(
  reference: ProgramReference,
  options: WorkerLoopOptions,
): Promise<AgentProgram> {
  if ('builtin' in reference) {
    const program = options.programs.get(reference.builtin);
    if (program === undefined) {
      throw new KeelError('KEEL_NOT_FOUND', `no built-in agent program ${reference.builtin}`);
    }
    return program;
  }
  return options.loadModule(reference.module);
}

function createContext(
  message: Extract<HostMessage, { type: 'start' }>,
  signal: AbortSignal,
  syscall: (kind: string, resource: string, params: JsonObject) => Promise<JsonValue>,
): AgentContext {
  const task = message.task as unknown as AgentTask;
  return {
    runId: message.runId,
    agent: message.agent,
    task: {
      prompt: typeof task.prompt === 'string' ? task.prompt : '',
      ...(task.input === undefined ? {} : { input: task.input }),
    },
    tools: message.tools,
    settings: message.settings,
    model: message.model ?? undefined,
    signal,
    syscall: (kind, resource, params = {}) => syscall(kind, resource, params),
    chat: createChat((model, parameters) => syscall('llm.chat', model, parameters)),
    // A tool's arguments are the intent's params, so grants' limits (paths, commands, domains)
    // and the verifier's rules see them.
    callTool: (name, args) => syscall('tool.call', name, args),
    now: async () => Number(await syscall('clock.now', '', {})),
    randomInt: async (min, max) => Number(await syscall('random', '', { min, max })),
    log: async (level, text, fields) => {
      await syscall('log', '', {
        level,
        message: text,
        ...(fields === undefined ? {} : { fields }),
      });
    },
  };
}

/**
 * A run's `chat`: sends only what a conversation adds to the run's previous chat (the last one
 * the program made) when its messages begin with that chat's, compared as JSON text (a
 * program may change a message in place: the text compared is the one sent). A chat that
 * extends one still in progress waits for its answer first: what it sends then depends only on
 * the program's calls and their answers, never on which answer arrived first, so a replay
 * sends the same. A continuation the node refuses because it does not hold the conversation
 * (after a restart, or long after) goes whole, naming the refused call (`fallbackOf`). Costs
 * the worker what sending the whole conversation did — each message serialised once a call —,
 * and spares the node parsing, checking, digesting and counting it again at every step.
 */
function createChat(
  send: (model: string, parameters: JsonObject) => Promise<JsonValue>,
): AgentContext['chat'] {
  /** The run's last chat: its messages as sent, and the `seq` its answer carried, if any. */
  let previous:
    | { readonly texts: readonly string[]; readonly seq: Promise<number | undefined> }
    | undefined;
  return async (model, parameters) => {
    const texts = parameters.messages.map((message) => JSON.stringify(message));
    const earlier = previous;
    const answered = Promise.withResolvers<number | undefined>();
    previous = { texts, seq: answered.promise };
    const whole = async (fallbackOf?: number) =>
      (await send(model, {
        ...(parameters as unknown as JsonObject),
        ...(fallbackOf === undefined ? {} : { fallbackOf }),
      })) as unknown as ChatResult;
    let result: ChatResult | undefined;
    try {
      const base =
        earlier !== undefined &&
        texts.length > earlier.texts.length &&
        earlier.texts.every((text, index) => texts[index] === text)
          ? earlier
          : undefined;
      const continues = base === undefined ? undefined : await base.seq;
      if (base === undefined || continues === undefined) result = await whole();
      else {
        try {
          result = (await send(model, {
            ...(parameters as unknown as JsonObject),
            continues,
            messages: parameters.messages.slice(base.texts.length) as unknown as JsonValue[],
          })) as unknown as ChatResult;
        } catch (error) {
          if (!isKeelError(error) || error.code !== 'KEEL_CONVERSATION_UNKNOWN') throw error;
          // Sent whole as the refused call's stand-in: an approval asked for it is this one's.
          const refused = error.details.seq;
          result = await whole(
            typeof refused === 'number' && Number.isSafeInteger(refused) && refused > 0
              ? refused
              : undefined,
          );
        }
      }
      return result;
    } finally {
      answered.resolve(typeof result?.seq === 'number' ? result.seq : undefined);
    }
  };
}

function toError(reason: unknown): KeelError {
  return isKeelError(reason) ? reason : new KeelError('KEEL_ABORTED', String(reason));
}

function errorJson(error: unknown): JsonObject {
  if (isKeelError(error)) {
    return {
      code: error.code,
      message: error.message.slice(0, 8192),
      details: error.details as JsonObject,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'KEEL_RUN_FAILED', message: message.slice(0, 8192), details: {} };
}
