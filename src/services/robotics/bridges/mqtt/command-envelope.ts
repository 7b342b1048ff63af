import { z } from 'zod';
import type { ErrorCode } from '../../../../platform/errors/error-catalogue.ts';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { JsonValue } from '../../../../platform/storage/ports/json-value.ts';

/** A command id: what a publisher chooses to correlate the result and to be deduplicated by. */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

const ENVELOPE_SCHEMA = z
  .object({
    id: z.string().regex(COMMAND_ID_PATTERN, 'must be 1-128 of A-Z a-z 0-9 . _ : -'),
    issuedAt: z.number().int().nonnegative(),
    command: z.unknown(),
  })
  .strict();

/**
 * One command as it travels on `<prefix>/commands`: `{ id, issuedAt, command }`, where
 * `issuedAt` is the publisher's wall-clock time in epoch milliseconds.
 */
export interface CommandEnvelope {
  readonly id: string;
  readonly issuedAt: number;
  readonly command: unknown;
}

/** What the bridge publishes on `<prefix>/command-results`; `id` is null when unreadable. */
export type CommandResult =
  | { readonly id: string | null; readonly ok: true; readonly value: JsonValue }
  | {
      readonly id: string | null;
      readonly ok: false;
      readonly error: { readonly code: ErrorCode; readonly message: string };
    };

/** Either the envelope, or why it was refused (with the id when it could be read). */
export type CommandEnvelopeReading =
  | { readonly ok: true; readonly envelope: CommandEnvelope }
  | { readonly ok: false; readonly id: string | null; readonly error: KeelError };

/** How old (and how far in the future) a command may be when the bridge is about to act. */
export interface CommandFreshness {
  readonly now: number;
  readonly maxCommandAgeMs: number;
  readonly maxClockSkewMs: number;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  const field = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.');
  return `${field}: ${issue?.message ?? 'invalid'}`;
}

/**
 * Reads a command envelope from an MQTT payload: checks the size before decoding, then UTF-8,
 * JSON and the envelope's shape. The command inside is not checked here.
 *
 * @example
 * ```ts
 * const reading = readCommandEnvelope(payload, 65_536);
 * if (!reading.ok) publishRefusal(reading.id, reading.error);
 * ```
 */
export function readCommandEnvelope(
  payload: Uint8Array,
  maxPayloadBytes: number,
): CommandEnvelopeReading {
  if (payload.byteLength > maxPayloadBytes) {
    return {
      ok: false,
      id: null,
      error: new KeelError(
        'KEEL_PAYLOAD_TOO_LARGE',
        `the command payload is ${payload.byteLength} bytes; the limit is ${maxPayloadBytes}`,
        { details: { bytes: payload.byteLength, maxBytes: maxPayloadBytes } },
      ),
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(UTF8.decode(payload));
  } catch (error) {
    return {
      ok: false,
      id: null,
      error: new KeelError('KEEL_INVALID_ARGUMENT', 'the command payload is not UTF-8 JSON', {
        cause: error,
      }),
    };
  }
  const parsed = ENVELOPE_SCHEMA.safeParse(value);
  if (parsed.success) return { ok: true, envelope: parsed.data };
  const id =
    typeof value === 'object' && value !== null && 'id' in value && typeof value.id === 'string'
      ? value.id
      : undefined;
  return {
    ok: false,
    id: id !== undefined && COMMAND_ID_PATTERN.test(id) ? id : null,
    error: new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `the command envelope is not valid at ${firstIssue(parsed.error)}`,
    ),
  };
}

/**
 * Refuses a command that waited too long to be acted on (`KEEL_TIMEOUT`), or that claims to
 * come from further in the future than clocks can disagree (`KEEL_INVALID_ARGUMENT`), since such
 * a command would never look stale. Returns `undefined` for a fresh command.
 *
 * @example
 * ```ts
 * const stale = checkFreshness(envelope.issuedAt, { now: Date.now(), maxCommandAgeMs: 2_000, maxClockSkewMs: 1_000 });
 * ```
 */
export function checkFreshness(
  issuedAt: number,
  freshness: CommandFreshness,
): KeelError | undefined {
  const ageMs = freshness.now - issuedAt;
  if (ageMs > freshness.maxCommandAgeMs) {
    return new KeelError(
      'KEEL_TIMEOUT',
      `the command is stale: issued ${ageMs} ms ago; the limit is ${freshness.maxCommandAgeMs} ms`,
      { details: { ageMs, maxCommandAgeMs: freshness.maxCommandAgeMs }, retryable: false },
    );
  }
  if (-ageMs > freshness.maxClockSkewMs) {
    return new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `the command is issued ${-ageMs} ms in the future; clocks may differ by ${freshness.maxClockSkewMs} ms`,
      { details: { aheadMs: -ageMs, maxClockSkewMs: freshness.maxClockSkewMs } },
    );
  }
  return undefined;
}

/**
 * Checks the command inside an envelope against the robot's command schema.
 *
 * @example
 * ```ts
 * const checked = checkCommand(envelope, IntentSchema);
 * if (checked.ok) await handle(checked.command);
 * ```
 */
export function checkCommand<Command>(
  envelope: CommandEnvelope,
  schema: z.ZodType<Command>,
):
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly error: KeelError } {
  const parsed = schema.safeParse(envelope.command);
  if (parsed.success) return { ok: true, command: parsed.data };
  return {
    ok: false,
    error: new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `the command does not match the command schema at ${firstIssue(parsed.error)}`,
    ),
  };
}
