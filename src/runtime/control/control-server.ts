import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { z } from 'zod';
import type { ApprovalService } from '../../kernel/approvals/approval-service.ts';
import type { EventBus } from '../../platform/bus/event-bus.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import {
  type JsonObject,
  type JsonValue,
  nestedWithin,
} from '../../platform/storage/ports/json-value.ts';
import { FINAL_RUN_STATUSES, type RunStatus } from '../../platform/storage/ports/run-store.ts';
import type { RobotService } from '../../services/robotics/robot-service.ts';
import type { AgentRuntime } from '../agent-runtime.ts';
import { RUN_STATUS, RUN_STEPS } from '../runs/run-topics.ts';
import { encodeFrame, FrameDecoder } from '../worker/frame-codec.ts';

/** The largest request an operator may send (a manifest is at most 1 MiB). */
export const CONTROL_FRAME_LIMIT = 4 * 1024 * 1024;
/** Unix socket paths are limited to 107 bytes by the kernel. */
const MAX_SOCKET_PATH = 107;

const RUN_STATUSES = [
  'pending',
  'running',
  'suspended',
  'succeeded',
  'failed',
  'cancelled',
  'dead-lettered',
] as const;
const NAME = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'an agent name');
const RUN_ID = z.string().regex(/^run_[A-Za-z0-9_-]{1,60}$/, 'a run id such as run_…');

const APPROVAL_ID = z.string().regex(/^apr_[A-Za-z0-9_-]{1,64}$/, 'an approval id (apr_…)');
/** Edit-then-approve: the most JSON an operator may put in place of a call's parameters. */
const MAX_PARAM_EDIT_BYTES = 65_536;

/**
 * How deep a request's JSON may nest: a manifest's values may nest 64 levels (its own check
 * says so, naming the field), inside the request and a signature envelope.
 */
const MAX_REQUEST_DEPTH = 128;
/** How deep a task's `input` may nest: the request and its params are the two levels above it. */
export const MAX_TASK_INPUT_DEPTH = MAX_REQUEST_DEPTH - 2;

const RequestSchema = z.discriminatedUnion('method', [
  z.strictObject({
    id: z.number().int(),
    method: z.literal('agents.deploy'),
    // As read: the deployer validates the manifest, naming the field (a copy here would drop
    // a `__proto__` key it refuses, among others).
    params: z.strictObject({ document: z.unknown() }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('agents.list'),
    params: z.strictObject({}),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('agents.show'),
    params: z.strictObject({ name: NAME }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('agents.lifecycle'),
    params: z.strictObject({
      name: NAME,
      action: z.enum(['pause', 'resume', 'stop', 'start', 'restart', 'remove']),
    }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('runs.submit'),
    params: z.strictObject({
      agent: NAME,
      prompt: z
        .string()
        .max(64 * 1024)
        .regex(/\S/, 'the task is empty: say what the agent should do'),
      input: z.record(z.string(), z.json()).optional(),
      priority: z.number().int().min(0).max(9).optional(),
    }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('runs.list'),
    params: z.strictObject({
      agent: NAME.optional(),
      status: z.enum(RUN_STATUSES).optional(),
      limit: z.number().int().min(1).max(1000).optional(),
    }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('runs.show'),
    params: z.strictObject({ runId: RUN_ID }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('runs.cancel'),
    params: z.strictObject({ runId: RUN_ID }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('runs.follow'),
    params: z.strictObject({ runId: RUN_ID }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('approvals.list'),
    params: z.strictObject({
      state: z.enum(['pending', 'approved', 'denied', 'expired']).optional(),
      limit: z.number().int().min(1).max(1000).optional(),
    }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('approvals.show'),
    params: z.strictObject({ approvalId: APPROVAL_ID }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('approvals.decide'),
    params: z.strictObject({
      approvalId: APPROVAL_ID,
      decision: z.enum(['approved', 'denied']),
      note: z.string().max(2000).optional(),
      /** Edit-then-approve: top-level parameters of the call to replace. */
      paramEdits: z
        .record(z.string().min(1).max(128), z.json())
        .refine((edits) => Object.keys(edits).length > 0, 'must replace at least one parameter')
        .refine(
          (edits) => Buffer.byteLength(JSON.stringify(edits)) <= MAX_PARAM_EDIT_BYTES,
          `must be at most ${MAX_PARAM_EDIT_BYTES} bytes of JSON`,
        )
        .optional(),
    }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('robot.status'),
    params: z.strictObject({}),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('robot.estop'),
    params: z.strictObject({
      release: z.boolean().default(false),
      note: z.string().max(2000).optional(),
    }),
  }),
  z.strictObject({
    id: z.number().int(),
    method: z.literal('robot.teleop'),
    params: z.strictObject({ linear: z.number().finite(), angular: z.number().finite() }),
  }),
]);

type ControlRequest = z.output<typeof RequestSchema>;

export interface ControlServerOptions {
  readonly path: string;
  readonly runtime: AgentRuntime;
  readonly approvals: ApprovalService;
  /** The node's robot, when `[robotics]` is enabled. */
  readonly robot?: RobotService | undefined;
  readonly bus: EventBus;
  readonly logger: Logger;
  readonly redactor: SecretRedactor;
}

/**
 * The operator's local control channel: a Unix socket in the data directory (mode 0600, in a
 * 0700 directory, so only the node's own user can connect), speaking length-prefixed JSON
 * requests. `keel agent …`, `keel run` and `keel runs …` use it to reach the running node;
 * each request is validated, and each action is audited by the runtime as `operator:local`.
 *
 * @example
 * ```ts
 * const control = await ControlServer.listen({ path: join(dataDirectory, 'keel.sock'), runtime, bus, logger, redactor });
 * await control.close();
 * ```
 */
export class ControlServer {
  readonly #server: Server;
  readonly #options: ControlServerOptions;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, options: ControlServerOptions) {
    this.#server = server;
    this.#options = options;
  }

  static async listen(options: ControlServerOptions): Promise<ControlServer> {
    if (Buffer.byteLength(options.path) > MAX_SOCKET_PATH) {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `the control socket path ${options.path} is longer than ${MAX_SOCKET_PATH} bytes`,
        { hint: 'use a shorter data directory path (--data-dir or KEEL_HOME)' },
      );
    }
    // A socket left by a killed node: the data directory lock proves no node owns it now.
    await unlink(options.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    const server = createServer();
    const control = new ControlServer(server, options);
    server.on('connection', (socket) => control.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(options.path, 0o600);
    return control;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await unlink(this.#options.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT')
        this.#options.logger.warn({ err: error }, 'could not remove the control socket');
    });
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    const decoder = new FrameDecoder(CONTROL_FRAME_LIMIT);
    const abort = new AbortController();
    const send = (message: unknown): void => {
      if (!socket.destroyed) socket.write(encodeFrame(message, 64 * 1024 * 1024));
    };
    socket.on('close', () => {
      this.#sockets.delete(socket);
      abort.abort();
    });
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        send({ id: 0, ok: false, error: toKeelError(error).toJSON() });
        socket.end();
        return;
      }
      for (const message of messages) {
        const id =
          typeof (message as { id?: unknown })?.id === 'number'
            ? (message as { id: number }).id
            : 0;
        // Before any schema recurses over it: a request nested deep enough would exhaust the
        // stack and take the node down with it.
        if (!nestedWithin(message, MAX_REQUEST_DEPTH)) {
          send({
            id,
            ok: false,
            error: new KeelError(
              'KEEL_INVALID_ARGUMENT',
              `control request: nested deeper than ${MAX_REQUEST_DEPTH} levels`,
            ).toJSON(),
          });
          continue;
        }
        const parsed = RequestSchema.safeParse(message);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          send({
            id,
            ok: false,
            error: new KeelError(
              'KEEL_INVALID_ARGUMENT',
              `control request ${issue?.path.join('.') || 'request'}: ${issue?.message ?? 'invalid'}`,
            ).toJSON(),
          });
          continue;
        }
        void this.#handle(parsed.data, send, abort.signal).then(
          (result) => send({ id, ok: true, result }),
          (error: unknown) =>
            send({
              id,
              ok: false,
              error: this.#options.redactor.redactError(toKeelError(error)).toJSON(),
            }),
        );
      }
    });
  }

  #robot(): RobotService {
    const robot = this.#options.robot;
    if (robot === undefined) {
      throw new KeelError('KEEL_NOT_FOUND', 'this node drives no robot', {
        hint: 'set [robotics] enabled = true in config.toml and restart the node',
      });
    }
    return robot;
  }

  async #handle(
    request: ControlRequest,
    send: (message: unknown) => void,
    signal: AbortSignal,
  ): Promise<unknown> {
    const { runtime } = this.#options;
    const actor = 'operator:local';
    switch (request.method) {
      case 'agents.deploy': {
        const result = await runtime.deploy(request.params.document, actor);
        return {
          outcome: result.outcome,
          agent: (await runtime.list()).find((agent) => agent.id === result.agent.id) ?? null,
        };
      }
      case 'agents.list':
        return runtime.list();
      case 'agents.show':
        return runtime.show(request.params.name);
      case 'agents.lifecycle':
        return runtime.lifecycle(request.params.name, request.params.action, actor);
      case 'runs.submit':
        return runtime.submitRun(
          request.params.agent,
          {
            prompt: request.params.prompt,
            ...(request.params.input === undefined
              ? {}
              : { input: request.params.input as JsonObject }),
          },
          {
            origin: 'cli',
            actor,
            ...(request.params.priority === undefined ? {} : { priority: request.params.priority }),
          },
        );
      case 'runs.list':
        return runtime.listRuns({
          ...(request.params.agent === undefined ? {} : { agent: request.params.agent }),
          ...(request.params.status === undefined ? {} : { status: request.params.status }),
          ...(request.params.limit === undefined ? {} : { limit: request.params.limit }),
        });
      case 'runs.show':
        return runtime.showRun(request.params.runId);
      case 'runs.cancel':
        return runtime.cancelRun(request.params.runId, actor);
      case 'runs.follow':
        return this.#follow(request.id, request.params.runId, send, signal);
      case 'approvals.list':
        return this.#options.approvals.list({
          ...(request.params.state === undefined ? {} : { state: request.params.state }),
          limit: request.params.limit ?? 100,
        });
      case 'approvals.show': {
        const found = await this.#options.approvals.get(request.params.approvalId);
        if (found === undefined) {
          throw new KeelError('KEEL_NOT_FOUND', `no approval ${request.params.approvalId}`, {
            hint: 'list pending approvals with `keel approvals list`',
          });
        }
        return found;
      }
      case 'approvals.decide':
        return this.#options.approvals.decide(
          request.params.approvalId,
          request.params.decision,
          actor,
          request.params.note,
          request.params.paramEdits as JsonObject | undefined,
        );
      case 'robot.status':
        return this.#robot().status({ map: true });
      case 'robot.estop': {
        const robot = this.#robot();
        if (request.params.release) {
          const released = await robot.release(actor, request.params.note);
          return { engaged: robot.body.engaged, changed: released };
        }
        const already = await robot.engage('operator', actor);
        return { engaged: robot.body.engaged, changed: !already };
      }
      case 'robot.teleop':
        await this.#robot().teleop(request.params.linear, request.params.angular, actor);
        return this.#robot().status();
    }
  }

  /**
   * Streams a run's steps and status changes (`{ id, event }` frames) until it ends; the
   * response is its final record. Steps already journaled are sent first.
   */
  async #follow(
    id: number,
    runId: string,
    send: (message: unknown) => void,
    signal: AbortSignal,
  ): Promise<JsonValue> {
    const { runtime, bus } = this.#options;
    const steps = bus.subscribe(RUN_STEPS, { signal });
    const statuses = bus.subscribe(RUN_STATUS, { signal });
    try {
      const { run, journal } = await runtime.showRun(runId);
      let lastSeq = 0;
      for (const entry of journal) {
        send({
          id,
          event: {
            type: 'step',
            seq: entry.seq,
            kind: entry.kind,
            outcome: entry.outcome,
            code:
              entry.outcome === 'error' ? ((entry.result as { code?: string }).code ?? null) : null,
            replayed: true,
          },
        });
        lastSeq = Math.max(lastSeq, entry.seq);
      }
      send({ id, event: { type: 'status', status: run.status, attempts: run.attempts } });
      if (FINAL_RUN_STATUSES.includes(run.status)) return run as unknown as JsonValue;
      const ended = new Promise<JsonValue>((resolve) => {
        void (async () => {
          for await (const message of statuses) {
            if (message.runId !== runId) continue;
            send({
              id,
              event: { type: 'status', status: message.status, attempts: message.attempts },
            });
            if (FINAL_RUN_STATUSES.includes(message.status as RunStatus)) {
              const final = await runtime.showRun(runId);
              resolve(final.run as unknown as JsonValue);
              return;
            }
          }
        })();
      });
      void (async () => {
        for await (const message of steps) {
          if (message.runId !== runId || message.seq <= lastSeq) continue;
          lastSeq = message.seq;
          send({
            id,
            event: {
              type: 'step',
              seq: message.seq,
              kind: message.kind,
              resource: message.resource,
              outcome: message.outcome,
              code: message.code,
              replayed: false,
            },
          });
        }
      })();
      const aborted = new Promise<never>((_, reject) => {
        signal.addEventListener(
          'abort',
          () => reject(new KeelError('KEEL_ABORTED', 'the follower left')),
          {
            once: true,
          },
        );
      });
      return await Promise.race([ended, aborted]);
    } finally {
      steps.close();
      statuses.close();
    }
  }
}
