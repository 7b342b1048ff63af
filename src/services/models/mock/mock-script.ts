import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';

export const MockFaultSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('rate-limit'),
    retryAfterSeconds: z.number().nonnegative().max(3_600).default(1),
  }),
  z.strictObject({ type: z.literal('server-error') }),
  z.strictObject({ type: z.literal('unavailable') }),
  z.strictObject({ type: z.literal('overloaded') }),
  z.strictObject({ type: z.literal('reset') }),
  z.strictObject({ type: z.literal('timeout') }),
  z.strictObject({
    type: z.literal('slow-stream'),
    delayMs: z.number().int().nonnegative().max(60_000).default(200),
  }),
  z.strictObject({ type: z.literal('malformed-json') }),
  z.strictObject({ type: z.literal('cut-mid-tool-call') }),
]);

/**
 * A fault the mock server injects instead of (or in the middle of) an answer: `rate-limit`
 * (429 with Retry-After), `server-error` (500), `unavailable` (503), `overloaded` (529),
 * `reset` (the connection is destroyed), `timeout` (no answer at all), `slow-stream`
 * (a pause before every chunk), `malformed-json`, `cut-mid-tool-call` (the stream stops
 * inside a tool call's arguments and the connection is destroyed).
 */
export type MockFault = z.output<typeof MockFaultSchema>;

const MockToolCallSchema = z.strictObject({
  id: z.string().min(1).max(128).optional(),
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/),
  arguments: z.record(z.string(), z.unknown()).default({}),
});

const MockReplySchema = z.strictObject({
  text: z.string().max(1_048_576).default(''),
  toolCalls: z.array(MockToolCallSchema).max(32).default([]),
  finishReason: z.enum(['stop', 'length']).default('stop'),
  /** Reported usage; computed from the text (about four bytes a token) when absent. */
  usage: z
    .strictObject({
      inputTokens: z.number().int().nonnegative(),
      outputTokens: z.number().int().nonnegative(),
    })
    .optional(),
});

const MockTurnSchema = z.strictObject({
  /** What the newest user or tool message must contain; a mismatch answers 400. */
  expect: z
    .strictObject({
      role: z.enum(['user', 'tool']).optional(),
      contains: z.string().max(10_000).optional(),
    })
    .optional(),
  /** A fault for the first request of this turn; the retry gets the reply. */
  fault: MockFaultSchema.optional(),
  reply: MockReplySchema.prefault({}),
});

const MockConversationSchema = z.strictObject({
  name: z.string().min(1).max(128).default('conversation'),
  /** Which requests play this conversation: by model, and by text in the first user message. */
  match: z
    .strictObject({
      model: z.string().max(256).optional(),
      contains: z.string().max(10_000).optional(),
    })
    .default({}),
  turns: z.array(MockTurnSchema).min(1).max(10_000),
});

const MockScriptSchema = z
  .strictObject({
    conversations: z.array(MockConversationSchema).max(1_000).optional(),
    turns: z.array(MockTurnSchema).min(1).max(10_000).optional(),
    /** When true, a request that matches no conversation is answered 400 instead of echoed. */
    strict: z.boolean().default(false),
  })
  .refine((script) => (script.conversations === undefined) !== (script.turns === undefined), {
    message: 'a script has either turns (one conversation) or conversations, not both or neither',
  });

export type MockReply = z.output<typeof MockReplySchema>;
export type MockTurn = z.output<typeof MockTurnSchema>;
export type MockConversation = z.output<typeof MockConversationSchema>;

export interface MockScript {
  readonly conversations: readonly MockConversation[];
  readonly strict: boolean;
}

/**
 * Validates a mock script (already parsed from JSON or YAML).
 *
 * @example
 * ```ts
 * const script = parseMockScript({ turns: [{ reply: { toolCalls: [{ name: 'read_file', arguments: { path: 'a.ts' } }] } }, { reply: { text: 'done' } }] });
 * ```
 */
export function parseMockScript(value: unknown, origin = 'script'): MockScript {
  const result = MockScriptSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `the mock script ${origin} is not valid at ${issue?.path.join('.') || 'the top'}: ${issue?.message ?? 'invalid'}`,
      { details: { origin, field: issue?.path.join('.') ?? '' } },
    );
  }
  const script = result.data;
  const conversations =
    script.conversations ??
    (script.turns === undefined ? [] : [{ name: 'script', match: {}, turns: script.turns }]);
  return { conversations, strict: script.strict };
}

/**
 * Reads a mock script from a `.json`, `.yaml` or `.yml` file (at most 8 MiB).
 *
 * @example
 * ```ts
 * const script = await loadMockScript('test/fixtures/fix-failing-test.yaml');
 * ```
 */
export async function loadMockScript(path: string): Promise<MockScript> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeelError('KEEL_NOT_FOUND', `the mock script ${path} cannot be read`, {
      cause: error,
      hint: 'check the path given to --script',
    });
  }
  if (text.length > 8_388_608) {
    throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', `the mock script ${path} is larger than 8 MiB`);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(path) ? parseYaml(text, { maxAliasCount: 100 }) : JSON.parse(text);
  } catch (error) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `the mock script ${path} cannot be parsed`, {
      cause: error,
      details: { reason: error instanceof Error ? error.message.slice(0, 200) : String(error) },
    });
  }
  return parseMockScript(value, path);
}

/** A tool call of a reply, with its arguments as JSON. */
export interface MockToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: JsonObject;
}
