import { z } from 'zod';
import { KeelError } from '../../platform/errors/keel-error.ts';
import {
  type JsonObject,
  type JsonValue,
  MAX_STORED_JSON_BYTES,
} from '../../platform/storage/ports/json-value.ts';
import type { ToolDescriptor } from './agent-program.ts';

/** The worker protocol's version; a worker that speaks another is stopped. */
export const WORKER_PROTOCOL_VERSION = 1;

/** What a frame may carry besides its intent or result: type, ids, field names. */
const FRAME_ENVELOPE_BYTES = 64 * 1024;

/**
 * The largest frame a worker may send: room for the largest intent the gate takes
 * (`gate.max_intent_bytes`) or the largest result a run may record, and no more. Every byte the
 * node accepts from a worker it parses and checks on its main thread, so a frame far larger
 * than anything the gate would take only lets a worker stall the node. A worker is told this
 * (`--max-frame-bytes`) and refuses a larger frame to its program, as the gate would.
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder(workerFrameLimit(configuration.gate.maxIntentBytes));
 * ```
 */
export function workerFrameLimit(maxIntentBytes: number): number {
  return Math.max(maxIntentBytes, MAX_STORED_JSON_BYTES) + FRAME_ENVELOPE_BYTES;
}

/**
 * A plain object, checked in constant time: its members are the gate's to check (it copies
 * the intent canonically once, refusing what is not JSON), so a schema walking every key here
 * only doubled the work a worker can make the node do.
 */
const PlainObject = z.custom<Record<string, unknown>>(
  (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  'expected an object',
);

/** Which program a worker runs: a built-in one by name, or a module the manifest names. */
export type ProgramReference = { readonly builtin: string } | { readonly module: string };

/** Host → worker. */
export type HostMessage =
  | {
      readonly type: 'start';
      readonly runId: string;
      readonly agent: { readonly id: string; readonly name: string; readonly version: string };
      readonly program: ProgramReference;
      readonly task: JsonObject;
      readonly tools: readonly ToolDescriptor[];
      readonly settings: JsonObject;
      readonly model: string | null;
    }
  | {
      readonly type: 'result';
      readonly runId: string;
      readonly call: number;
      readonly ok: true;
      readonly value: JsonValue;
    }
  | {
      readonly type: 'result';
      readonly runId: string;
      readonly call: number;
      readonly ok: false;
      readonly error: JsonObject;
    }
  | { readonly type: 'cancel'; readonly runId: string; readonly reason: string }
  | { readonly type: 'shutdown' };

const RUN_ID = z.string().min(1).max(64);

const HelloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int(),
  pid: z.number().int(),
});
const HeartbeatSchema = z.strictObject({
  type: z.literal('heartbeat'),
  /** Heap in use, bytes: the supervisor reports it. */
  heapUsed: z.number().int().nonnegative(),
  rss: z.number().int().nonnegative(),
});
const SyscallSchema = z.strictObject({
  type: z.literal('syscall'),
  runId: RUN_ID,
  /** The worker's own number for the call, echoed in the result. */
  call: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  intent: z.strictObject({
    kind: z.string().max(64),
    resource: z.string().max(256),
    params: PlainObject,
  }),
});
const DoneSchema = z.discriminatedUnion('ok', [
  // A frame is JSON text, so what it holds is JSON: not walked again here (see PlainObject).
  z.strictObject({
    type: z.literal('done'),
    runId: RUN_ID,
    ok: z.literal(true),
    result: z.custom<JsonValue>((value) => value !== undefined, 'expected a result'),
  }),
  z.strictObject({
    type: z.literal('done'),
    runId: RUN_ID,
    ok: z.literal(false),
    error: z.strictObject({
      code: z.string().max(64),
      message: z.string().max(8192),
      details: PlainObject.optional(),
    }),
  }),
]);

// Discriminated by `type`: a message is checked against its own type's schema only (a plain
// union would try, and fail, every schema before the right one on each syscall).
const WorkerMessageSchema = z.discriminatedUnion('type', [
  HelloSchema,
  HeartbeatSchema,
  SyscallSchema,
  DoneSchema,
]);

/** Worker → host: validated, because the worker runs code the node does not trust. */
export type WorkerMessage = z.output<typeof WorkerMessageSchema>;

/**
 * Validates a message from a worker; anything else is `KEEL_WORKER_PROTOCOL`.
 *
 * @example
 * ```ts
 * const message = parseWorkerMessage(JSON.parse(text));
 * ```
 */
export function parseWorkerMessage(value: unknown): WorkerMessage {
  const parsed = WorkerMessageSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeelError(
      'KEEL_WORKER_PROTOCOL',
      `the worker sent an invalid message (${issue?.path.join('.') || 'message'}: ${issue?.message ?? 'invalid'})`,
    );
  }
  return parsed.data;
}
