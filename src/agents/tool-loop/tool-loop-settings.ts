import { Buffer } from 'node:buffer';
import { z } from 'zod';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';

/** The largest system prompt and result schema the settings accept, in UTF-8 bytes. */
export const SETTINGS_TEXT_BYTE_LIMIT = 65_536;

/** The system prompt of a tool loop whose manifest sets none. */
export const DEFAULT_SYSTEM_PROMPT =
  'You are an agent running on Keel. Work on the task step by step. Call the tools you are ' +
  'given when they help; each result comes back to you as a message. If a tool fails, read ' +
  'the error and try another way. When the task is done, reply with your final answer and no ' +
  'tool calls.';

const TOOL_NAME = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'expected a tool name');

function fitsInBytes(text: string): boolean {
  return Buffer.byteLength(text, 'utf8') <= SETTINGS_TEXT_BYTE_LIMIT;
}

export const ToolLoopSettingsSchema = z.strictObject({
  /** The system prompt. */
  system: z
    .string()
    .refine(fitsInBytes, `expected at most ${SETTINGS_TEXT_BYTE_LIMIT} bytes`)
    .default(DEFAULT_SYSTEM_PROMPT),
  /** The model alias to use when the manifest names no `models.default`. */
  model: z.string().min(1).max(128).optional(),
  /** Steps the run may take in all: every `llm.chat` and every `tool.call`. */
  maxSteps: z.int().min(1).max(100_000).default(50),
  /** Model turns the run may take. */
  maxIterations: z.int().min(1).max(100_000).default(20),
  /** The token budget of the messages sent on each turn; older messages are left out first. */
  contextTokens: z.int().min(256).max(100_000_000).default(32_000),
  /** The longest answer the model may give on a turn. */
  maxOutputTokens: z.int().min(1).max(1_000_000).optional(),
  /** How many identical consecutive tool calls count as a stuck loop. */
  repeatLimit: z.int().min(2).max(1_000).default(3),
  /** A JSON Schema of an object: when set, the final answer must be that JSON object. */
  resultSchema: z
    .record(z.string(), z.json())
    .refine(
      (schema) => schema.type === undefined || schema.type === 'object',
      "expected a schema of an object (type: 'object')",
    )
    .refine(
      (schema) => fitsInBytes(JSON.stringify(schema)),
      `expected at most ${SETTINGS_TEXT_BYTE_LIMIT} bytes of JSON`,
    )
    .optional(),
  /**
   * Which tools the model may call. `auto` and `none` hold for every turn; `required` and a
   * named tool force a call on the first turn only, so that the model can still finish.
   */
  toolChoice: z
    .union([z.enum(['auto', 'none', 'required']), z.strictObject({ name: TOOL_NAME })])
    .optional(),
});

/** The validated settings of the tool loop, defaults applied. */
export type ToolLoopSettings = z.output<typeof ToolLoopSettingsSchema>;

/**
 * Validates a tool loop's `program.settings` and applies the defaults.
 * Throws `KEEL_INVALID_ARGUMENT` naming the first field that is not valid.
 *
 * @example
 * ```ts
 * const settings = parseToolLoopSettings({ maxSteps: 10 });
 * settings.maxIterations; // 20
 * ```
 */
export function parseToolLoopSettings(settings: JsonObject): ToolLoopSettings {
  const result = ToolLoopSettingsSchema.safeParse(settings);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field =
    issue?.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue?.path.join('.') || '';
  throw new KeelError(
    'KEEL_INVALID_ARGUMENT',
    `tool-loop settings ${field === '' ? '' : `field ${field} `}is not valid: ${issue?.message ?? 'invalid'}`,
    { details: { field } },
  );
}
