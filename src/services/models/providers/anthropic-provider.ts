import { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import { boundedChunks } from '../http/bounded-body.ts';
import { decodeServerSentEvents } from '../http/server-sent-event-decoder.ts';
import type {
  ChatDelta,
  ChatMessage,
  ChatRequest,
  ChatResponse,
  EmbedResponse,
  FinishReason,
  ModelProviderV1,
  ProviderCallOptions,
  ProviderCapabilities,
  ToolCall,
} from '../provider/model-provider.ts';
import { parseProtocol, parseProviderJson } from './parse-protocol.ts';
import { ProviderHttp, type ProviderHttpOptions } from './provider-http.ts';
import { ToolCallAssembler } from './tool-call-assembler.ts';

export interface AnthropicOptions extends Omit<ProviderHttpOptions, 'headers' | 'baseUrl'> {
  /** Default `https://api.anthropic.com`. */
  readonly baseUrl?: string;
  readonly apiKey?: string;
  /** The `anthropic-version` header (default `2023-06-01`). */
  readonly version?: string;
  /** Anthropic requires max_tokens; used when a request does not say (default 4096). */
  readonly defaultMaxOutputTokens?: number;
  readonly maxEventBytes?: number;
}

const UsageSchema = z.looseObject({
  input_tokens: z.number().int().nonnegative().default(0),
  output_tokens: z.number().int().nonnegative().default(0),
  cache_creation_input_tokens: z.number().int().nonnegative().nullish(),
  cache_read_input_tokens: z.number().int().nonnegative().nullish(),
});

const BlockSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text'), text: z.string() }),
  z.looseObject({
    type: z.literal('tool_use'),
    id: z.string().max(256),
    name: z.string().max(256),
    input: z.record(z.string(), z.unknown()),
  }),
  z.looseObject({ type: z.literal('thinking') }),
  z.looseObject({ type: z.literal('redacted_thinking') }),
]);

const MessageSchema = z.looseObject({
  model: z.string().max(256).default(''),
  content: z.array(BlockSchema).max(1_000),
  stop_reason: z.string().nullish(),
  usage: UsageSchema.nullish(),
});

const StreamEventSchema = z.looseObject({ type: z.string() });
const MessageStartSchema = z.looseObject({
  message: z.looseObject({ model: z.string().max(256).optional(), usage: UsageSchema.nullish() }),
});
const BlockStartSchema = z.looseObject({
  index: z.number().int().nonnegative().max(10_000),
  content_block: z.looseObject({
    type: z.string(),
    id: z.string().max(256).optional(),
    name: z.string().max(256).optional(),
  }),
});
const BlockDeltaSchema = z.looseObject({
  index: z.number().int().nonnegative().max(10_000),
  delta: z.looseObject({
    type: z.string(),
    text: z.string().optional(),
    partial_json: z.string().optional(),
  }),
});
const MessageDeltaSchema = z.looseObject({
  delta: z.looseObject({ stop_reason: z.string().nullish() }),
  usage: z.looseObject({ output_tokens: z.number().int().nonnegative() }).nullish(),
});
const StreamErrorSchema = z.looseObject({
  error: z.looseObject({ type: z.string(), message: z.string().default('') }),
});

/** The name of the forced tool that carries a JSON-schema answer. */
const STRUCTURED_OUTPUT_TOOL = 'structured_output';

/**
 * Anthropic's Messages API: chat, streaming (typed server-sent events), native tool use, and
 * JSON-schema output through a forced tool whose input schema is the requested schema (the
 * answer comes back as that tool's input and is returned as JSON text). Anthropic has no
 * embeddings endpoint.
 *
 * @example
 * ```ts
 * const provider = new AnthropicProvider({ providerId: 'anthropic', apiKey, timeoutMs: 120_000, maxResponseBytes: 8_388_608 });
 * ```
 */
export class AnthropicProvider implements ModelProviderV1 {
  readonly specificationVersion = 'v1';
  readonly kind = 'anthropic';
  readonly id: string;
  readonly capabilities: ProviderCapabilities = {
    nativeTools: true,
    jsonSchema: true,
    embeddings: false,
  };
  readonly #http: ProviderHttp;
  readonly #defaultMaxOutputTokens: number;
  readonly #maxEventBytes: number;

  constructor(options: AnthropicOptions) {
    this.id = options.providerId;
    this.#defaultMaxOutputTokens = options.defaultMaxOutputTokens ?? 4_096;
    this.#maxEventBytes = options.maxEventBytes ?? 1_048_576;
    this.#http = new ProviderHttp({
      ...options,
      baseUrl: options.baseUrl ?? 'https://api.anthropic.com',
      headers: {
        'anthropic-version': options.version ?? '2023-06-01',
        ...(options.apiKey === undefined ? {} : { 'x-api-key': options.apiKey }),
      },
    });
  }

  async doChat(request: ChatRequest, options: ProviderCallOptions): Promise<ChatResponse> {
    const body = await this.#http.json('/v1/messages', this.#body(request, false), options.signal);
    const message = parseProtocol(this.id, MessageSchema, body, 'message');
    let text = '';
    const toolCalls: ToolCall[] = [];
    for (const block of message.content) {
      if (block.type === 'text') text += block.text;
      if (block.type === 'tool_use') {
        toolCalls.push({ id: block.id, name: block.name, arguments: block.input as JsonObject });
      }
    }
    return structured(request, {
      text,
      toolCalls,
      finishReason: stopReason(message.stop_reason),
      usage: toUsage(message.usage),
      model: message.model || request.model,
    });
  }

  async *doStream(request: ChatRequest, options: ProviderCallOptions): AsyncGenerator<ChatDelta> {
    const call = await this.#http.request('/v1/messages', {
      method: 'POST',
      body: this.#body(request, true),
      signal: options.signal,
    });
    const structuredName =
      request.responseFormat?.type === 'json-schema' ? STRUCTURED_OUTPUT_TOOL : undefined;
    const assembler = new ToolCallAssembler(this.id);
    const toolBlocks = new Set<number>();
    let inputTokens: number | undefined;
    let outputTokens = 0;
    let stop: string | null | undefined;
    let model = request.model;
    let stopped = false;
    try {
      const events = decodeServerSentEvents(
        boundedChunks(call.response.body, this.#http.options.maxResponseBytes),
        { maxEventBytes: this.#maxEventBytes },
      );
      for await (const event of events) {
        const value = parseProviderJson(this.id, event.data, 'stream event');
        const { type } = parseProtocol(this.id, StreamEventSchema, value, 'stream event');
        if (type === 'message_start') {
          const start = parseProtocol(this.id, MessageStartSchema, value, 'message_start');
          if (start.message.model) model = start.message.model;
          inputTokens = inputOf(start.message.usage);
          outputTokens = start.message.usage?.output_tokens ?? 0;
        } else if (type === 'content_block_start') {
          const start = parseProtocol(this.id, BlockStartSchema, value, 'content_block_start');
          if (start.content_block.type === 'tool_use') {
            toolBlocks.add(start.index);
            if (start.content_block.name !== structuredName) {
              yield* assembler.fragment(
                start.index,
                start.content_block.id,
                start.content_block.name,
                undefined,
              );
            }
          }
        } else if (type === 'content_block_delta') {
          const delta = parseProtocol(this.id, BlockDeltaSchema, value, 'content_block_delta');
          if (delta.delta.type === 'text_delta' && delta.delta.text) {
            yield { type: 'text', text: delta.delta.text };
          } else if (delta.delta.type === 'input_json_delta' && toolBlocks.has(delta.index)) {
            if (structuredName !== undefined && !assembler.has(delta.index)) {
              // The forced structured-output tool's input is the answer text itself.
              if (delta.delta.partial_json) yield { type: 'text', text: delta.delta.partial_json };
            } else {
              yield* assembler.fragment(
                delta.index,
                undefined,
                undefined,
                delta.delta.partial_json,
              );
            }
          }
        } else if (type === 'message_delta') {
          const delta = parseProtocol(this.id, MessageDeltaSchema, value, 'message_delta');
          stop = delta.delta.stop_reason;
          if (delta.usage) outputTokens = delta.usage.output_tokens;
        } else if (type === 'message_stop') {
          stopped = true;
          break;
        } else if (type === 'error') {
          const failure = parseProtocol(this.id, StreamErrorSchema, value, 'error event');
          throw streamError(this.id, failure.error.type, failure.error.message);
        }
      }
    } catch (error) {
      throw call.failure(error, true);
    } finally {
      call.finish();
    }
    if (!stopped) {
      throw new KeelError(
        'KEEL_PROVIDER_STREAM_INTERRUPTED',
        `the stream from provider ${this.id} ended before message_stop`,
        {
          details: { provider: this.id, reason: assembler.pending ? 'mid-tool-call' : 'no-finish' },
        },
      );
    }
    yield* assembler.complete();
    const finishReason = structuredName !== undefined ? 'stop' : stopReason(stop);
    yield {
      type: 'finish',
      finishReason,
      usage: inputTokens === undefined ? undefined : { inputTokens, outputTokens },
      model,
    };
  }

  async doEmbed(): Promise<EmbedResponse> {
    throw new KeelError(
      'KEEL_PROVIDER_REJECTED',
      `provider ${this.id} (Anthropic) has no embeddings`,
      {
        details: { provider: this.id, reason: 'unsupported' },
      },
    );
  }

  async doHealthCheck(options: ProviderCallOptions): Promise<void> {
    await this.#http.json('/v1/models', undefined, options.signal, 'GET');
  }

  #body(request: ChatRequest, stream: boolean): JsonObject {
    const system = request.messages
      .filter((message) => message.role === 'system')
      .map((message) => message.content)
      .join('\n\n');
    const body: Record<string, unknown> = {
      model: request.model,
      max_tokens: request.maxOutputTokens ?? this.#defaultMaxOutputTokens,
      messages: toWireMessages(request.messages),
    };
    if (system !== '') body.system = system;
    const tools: Record<string, unknown>[] = (request.tools ?? []).map((tool) => ({
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      input_schema: tool.parameters,
    }));
    const format = request.responseFormat;
    if (format?.type === 'json-schema') {
      tools.push({
        name: STRUCTURED_OUTPUT_TOOL,
        description: `Answer with the ${format.name} object.`,
        input_schema: format.schema,
      });
      body.tool_choice = { type: 'tool', name: STRUCTURED_OUTPUT_TOOL };
    } else if (request.toolChoice !== undefined && tools.length > 0) {
      const choice = request.toolChoice;
      body.tool_choice =
        choice === 'auto'
          ? { type: 'auto' }
          : choice === 'none'
            ? { type: 'none' }
            : choice === 'required'
              ? { type: 'any' }
              : { type: 'tool', name: choice.name };
    }
    if (tools.length > 0) body.tools = tools;
    if (request.temperature !== undefined) body.temperature = request.temperature;
    if (request.topP !== undefined) body.top_p = request.topP;
    if (request.stop !== undefined && request.stop.length > 0) body.stop_sequences = request.stop;
    if (stream) body.stream = true;
    return body as JsonObject;
  }
}

/**
 * Anthropic's messages alternate user and assistant: system messages go to `system`, tool
 * results become `tool_result` blocks of a user turn, and consecutive turns of one role merge.
 */
function toWireMessages(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  const wire: { role: 'user' | 'assistant'; content: Record<string, unknown>[] }[] = [];
  const push = (role: 'user' | 'assistant', blocks: Record<string, unknown>[]): void => {
    const last = wire.at(-1);
    if (last !== undefined && last.role === role) last.content.push(...blocks);
    else wire.push({ role, content: [...blocks] });
  };
  for (const message of messages) {
    switch (message.role) {
      case 'system':
        break;
      case 'user':
        push('user', [{ type: 'text', text: message.content }]);
        break;
      case 'tool':
        push('user', [
          { type: 'tool_result', tool_use_id: message.toolCallId, content: message.content },
        ]);
        break;
      case 'assistant':
        push('assistant', [
          ...(message.content === '' ? [] : [{ type: 'text', text: message.content }]),
          ...(message.toolCalls ?? []).map((call) => ({
            type: 'tool_use',
            id: call.id,
            name: call.name,
            input: call.arguments,
          })),
        ]);
        break;
    }
  }
  return wire;
}

/** A JSON-schema answer arrives as the forced tool's input; it is returned as JSON text. */
function structured(request: ChatRequest, response: ChatResponse): ChatResponse {
  if (request.responseFormat?.type !== 'json-schema') return response;
  const answer = response.toolCalls.find((call) => call.name === STRUCTURED_OUTPUT_TOOL);
  if (answer === undefined) return response;
  return {
    ...response,
    text: JSON.stringify(answer.arguments),
    toolCalls: response.toolCalls.filter((call) => call !== answer),
    finishReason: 'stop',
  };
}

function inputOf(usage: z.output<typeof UsageSchema> | null | undefined): number | undefined {
  if (usage === null || usage === undefined) return undefined;
  // Cached prompt tokens are still input the provider processed (and bills, at its rate).
  return (
    usage.input_tokens +
    (usage.cache_creation_input_tokens ?? 0) +
    (usage.cache_read_input_tokens ?? 0)
  );
}

function toUsage(usage: z.output<typeof UsageSchema> | null | undefined): ChatResponse['usage'] {
  const inputTokens = inputOf(usage);
  return inputTokens === undefined || usage === null || usage === undefined
    ? undefined
    : { inputTokens, outputTokens: usage.output_tokens };
}

function stopReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    case 'max_tokens':
      return 'length';
    case 'tool_use':
      return 'tool-calls';
    case 'refusal':
      return 'content-filter';
    default:
      return 'other';
  }
}

function streamError(providerId: string, type: string, fullMessage: string): KeelError {
  const message = fullMessage.length > 500 ? `${fullMessage.slice(0, 500)}…` : fullMessage;
  const details = { provider: providerId, providerMessage: message.slice(0, 500), errorType: type };
  if (type === 'rate_limit_error') {
    return new KeelError(
      'KEEL_PROVIDER_RATE_LIMITED',
      `provider ${providerId} is rate limiting: ${message}`,
      { details },
    );
  }
  if (type === 'overloaded_error' || type === 'api_error') {
    return new KeelError(
      'KEEL_PROVIDER_UNAVAILABLE',
      `provider ${providerId} failed mid-stream: ${message}`,
      { details },
    );
  }
  return new KeelError(
    'KEEL_PROVIDER_REJECTED',
    `provider ${providerId} rejected the request mid-stream: ${message}`,
    { details },
  );
}
