import { z } from 'zod';
import type { SyscallIntent } from '../../kernel/gate/syscall.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { ChatMessage, ChatRequest, ToolDefinition } from './provider/model-provider.ts';

const TOOL_NAME = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'a tool name');
const TEXT = z.string().max(4 * 1024 * 1024);

/**
 * A JSON object. These params reach here only through the gate, whose intent check has already
 * refused anything that is not plain JSON, so the members are not checked a second time.
 */
const JSON_OBJECT = z.record(z.string(), z.unknown());

const ToolCallSchema = z.strictObject({
  id: z.string().min(1).max(256),
  name: TOOL_NAME,
  arguments: JSON_OBJECT,
});

const MessageSchema = z.discriminatedUnion('role', [
  z.strictObject({ role: z.literal('system'), content: TEXT }),
  z.strictObject({ role: z.literal('user'), content: TEXT }),
  z.strictObject({
    role: z.literal('assistant'),
    content: TEXT.default(''),
    toolCalls: z.array(ToolCallSchema).max(128).optional(),
  }),
  z.strictObject({
    role: z.literal('tool'),
    toolCallId: z.string().min(1).max(256),
    name: TOOL_NAME.optional(),
    content: TEXT,
  }),
]);

/** The most messages a conversation sent to a model may have. */
export const MAX_CHAT_MESSAGES = 5_000;

/** `llm.chat` params: the request without its model (the intent's resource names the alias). */
const ChatParametersSchema = z.strictObject({
  /**
   * The `seq` of an earlier `llm.chat` of the same run whose conversation `messages` continue:
   * the model is sent that call's messages and then these (see `ConversationCache`).
   */
  continues: z.number().int().min(1).optional(),
  /**
   * The `seq` of the run's earlier `llm.chat` that continued a conversation this node did not
   * hold (`KEEL_CONVERSATION_UNKNOWN`): this call is that one sent whole, and an approval given
   * to that call is this one's.
   */
  fallbackOf: z.number().int().min(1).optional(),
  messages: z.array(MessageSchema).min(1).max(MAX_CHAT_MESSAGES),
  tools: z
    .array(
      z.strictObject({
        name: TOOL_NAME,
        description: z.string().max(8_192).optional(),
        parameters: JSON_OBJECT.default({ type: 'object', properties: {} }),
      }),
    )
    .max(256)
    .optional(),
  toolChoice: z
    .union([z.enum(['auto', 'none', 'required']), z.strictObject({ name: TOOL_NAME })])
    .optional(),
  responseFormat: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('text') }),
      z.strictObject({ type: z.literal('json') }),
      z.strictObject({
        type: z.literal('json-schema'),
        name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
        schema: JSON_OBJECT,
      }),
    ])
    .optional(),
  maxOutputTokens: z.number().int().min(1).max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
  topP: z.number().gt(0).max(1).optional(),
  stop: z.array(z.string().min(1).max(256)).max(16).optional(),
  /** Stream deltas to the caller as progress events; the result is the same. */
  stream: z.boolean().default(false),
});

/** `llm.embed` params. */
const EmbedParametersSchema = z.strictObject({
  inputs: z
    .array(z.string().max(1024 * 1024))
    .min(1)
    .max(2_048),
  dimensions: z.number().int().min(1).max(16_384).optional(),
});

export interface ChatCall {
  readonly alias: string;
  /** With `continues`, its messages are those the call adds to that conversation. */
  readonly request: Omit<ChatRequest, 'model'>;
  readonly stream: boolean;
  /** The `seq` of the run's earlier call whose conversation this one continues. */
  readonly continues: number | undefined;
  /** The `seq` of the run's refused continuation this call sends whole. */
  readonly fallbackOf: number | undefined;
}

export interface EmbedCall {
  readonly alias: string;
  readonly inputs: readonly string[];
  readonly dimensions: number | undefined;
}

function invalid(kind: string, error: z.ZodError): KeelError {
  const issue = error.issues[0];
  const field = issue?.path.join('.') || 'params';
  return new KeelError(
    'KEEL_INVALID_ARGUMENT',
    `${kind} params ${field}: ${issue?.message ?? 'invalid'}`,
    {
      details: { field },
    },
  );
}

function aliasOf(intent: SyscallIntent): string {
  if (intent.resource === '') {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `${intent.kind} needs the model alias as its resource`,
      {
        details: { field: 'resource' },
      },
    );
  }
  return intent.resource;
}

/**
 * Validates an `llm.chat` intent: the alias is its resource, the request its params.
 *
 * @example
 * ```ts
 * const { alias, request } = chatCallOf({ kind: 'llm.chat', resource: 'default', params: { messages: [{ role: 'user', content: 'hi' }] } }, 65_536);
 * ```
 */
export function chatCallOf(intent: SyscallIntent, maxOutputTokens: number): ChatCall {
  const parsed = ChatParametersSchema.safeParse(intent.params);
  if (!parsed.success) throw invalid('llm.chat', parsed.error);
  const { stream, tools, messages, continues, fallbackOf, ...rest } = parsed.data;
  if (continues !== undefined && fallbackOf !== undefined) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      'llm.chat params fallbackOf: a call that continues a conversation is not sent whole',
      { details: { field: 'fallbackOf' } },
    );
  }
  if (rest.maxOutputTokens !== undefined && rest.maxOutputTokens > maxOutputTokens) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `llm.chat maxOutputTokens may be at most ${maxOutputTokens}`,
      {
        details: { field: 'maxOutputTokens', limit: maxOutputTokens },
      },
    );
  }
  const request = {
    ...rest,
    messages: messages as ChatMessage[],
    ...(tools === undefined ? {} : { tools: tools as ToolDefinition[] }),
  } as Omit<ChatRequest, 'model'>;
  return { alias: aliasOf(intent), request, stream, continues, fallbackOf };
}

/**
 * Validates an `llm.embed` intent.
 *
 * @example
 * ```ts
 * const { alias, inputs } = embedCallOf({ kind: 'llm.embed', resource: 'embed', params: { inputs: ['a'] } });
 * ```
 */
export function embedCallOf(intent: SyscallIntent): EmbedCall {
  const parsed = EmbedParametersSchema.safeParse(intent.params);
  if (!parsed.success) throw invalid('llm.embed', parsed.error);
  return { alias: aliasOf(intent), inputs: parsed.data.inputs, dimensions: parsed.data.dimensions };
}

/**
 * What the audit log and an approver are shown of an `llm.chat` call: its settings, how many
 * messages the conversation has (with `continues`, how many the call adds to it), the messages
 * after the last assistant message (what is new to the model at this call: the task and
 * system prompt at first, then the tools' results and anything the program added) and the
 * tools by name. The earlier messages were shown with the calls that added them, and the
 * intent's digest covers all the messages the call carries (a continued call's digest, the
 * ones it adds; the call it continues had its own), so the audit does not copy a growing
 * conversation into every entry. Any JSON is accepted: it may be
 * summarising a call that is then refused as invalid.
 *
 * @example
 * ```ts
 * summariseChatParameters({ messages: [system, user, assistant, toolResult], tools: [readFile] });
 * // { messages: 4, newMessages: [toolResult], tools: ['read_file'] }
 * ```
 */
export function summariseChatParameters(params: Readonly<Record<string, unknown>>): JsonObject {
  const { messages, tools, ...settings } = params;
  const summary: Record<string, unknown> = { ...settings };
  if (Array.isArray(messages)) {
    summary.messages = messages.length;
    let from = messages.length;
    while (from > 0 && !isAssistantMessage(messages[from - 1])) from -= 1;
    summary.newMessages = messages.slice(from);
  } else if (messages !== undefined) {
    summary.messages = messages;
  }
  if (Array.isArray(tools)) {
    summary.tools = tools.map((tool: unknown) =>
      typeof tool === 'object' &&
      tool !== null &&
      typeof (tool as { name?: unknown }).name === 'string'
        ? (tool as { name: string }).name
        : tool,
    );
  } else if (tools !== undefined) {
    summary.tools = tools;
  }
  return summary as Record<string, JsonValue>;
}

function isAssistantMessage(message: unknown): boolean {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { role?: unknown }).role === 'assistant'
  );
}
