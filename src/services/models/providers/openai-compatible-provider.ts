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
  EmbedRequest,
  EmbedResponse,
  FinishReason,
  ModelProviderV1,
  ProviderCallOptions,
  ProviderCapabilities,
  ToolCall,
} from '../provider/model-provider.ts';
import { parseProtocol, parseProviderJson } from './parse-protocol.ts';
import { ProviderHttp, type ProviderHttpOptions } from './provider-http.ts';
import { parseToolArguments, ToolCallAssembler } from './tool-call-assembler.ts';

export interface OpenAiCompatibleOptions extends Omit<ProviderHttpOptions, 'headers'> {
  /** Sent as `Authorization: Bearer …`; omit for local servers without keys. */
  readonly apiKey?: string;
  readonly extraHeaders?: Readonly<Record<string, string>>;
  /** `max_completion_tokens` for OpenAI's newer models; `max_tokens` (default) elsewhere. */
  readonly maxTokensField?: 'max_tokens' | 'max_completion_tokens';
  readonly capabilities?: Partial<ProviderCapabilities>;
  /** Largest single server-sent event. */
  readonly maxEventBytes?: number;
}

const UsageSchema = z
  .looseObject({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative().default(0),
  })
  .nullish();

const ToolCallSchema = z.looseObject({
  id: z.string().max(256).optional(),
  type: z.string().optional(),
  function: z.looseObject({ name: z.string().max(256), arguments: z.string().default('') }),
});

const CompletionSchema = z.looseObject({
  model: z.string().max(256).default(''),
  choices: z
    .array(
      z.looseObject({
        message: z.looseObject({
          content: z.string().nullish(),
          tool_calls: z.array(ToolCallSchema).max(128).nullish(),
        }),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1),
  usage: UsageSchema,
});

const ChunkSchema = z.looseObject({
  model: z.string().max(256).optional(),
  choices: z
    .array(
      z.looseObject({
        delta: z
          .looseObject({
            content: z.string().nullish(),
            tool_calls: z
              .array(
                z.looseObject({
                  index: z.number().int().nonnegative().max(1_000),
                  id: z.string().max(256).nullish(),
                  function: z
                    .looseObject({
                      name: z.string().max(256).nullish(),
                      arguments: z.string().nullish(),
                    })
                    .nullish(),
                }),
              )
              .nullish(),
          })
          .nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .default([]),
  usage: UsageSchema,
});

const EmbeddingSchema = z.looseObject({
  model: z.string().max(256).default(''),
  data: z.array(
    z.looseObject({ index: z.number().int().nonnegative(), embedding: z.array(z.number()) }),
  ),
  usage: z.looseObject({ prompt_tokens: z.number().int().nonnegative() }).nullish(),
});

/**
 * The OpenAI Chat Completions wire format, which OpenAI, vLLM, llama.cpp's server, LM Studio
 * and Ollama's `/v1` all speak: chat, streaming (server-sent events with `[DONE]`), native
 * tool calls, JSON-schema output and embeddings.
 *
 * @example
 * ```ts
 * const provider = new OpenAiCompatibleProvider({ providerId: 'openai', baseUrl: 'https://api.openai.com/v1', apiKey, timeoutMs: 60_000, maxResponseBytes: 8_388_608 });
 * ```
 */
export class OpenAiCompatibleProvider implements ModelProviderV1 {
  readonly specificationVersion = 'v1';
  readonly kind = 'openai-compatible';
  readonly id: string;
  readonly capabilities: ProviderCapabilities;
  readonly #http: ProviderHttp;
  readonly #maxTokensField: 'max_tokens' | 'max_completion_tokens';
  readonly #maxEventBytes: number;

  constructor(options: OpenAiCompatibleOptions) {
    this.id = options.providerId;
    this.capabilities = {
      nativeTools: true,
      jsonSchema: true,
      embeddings: true,
      ...options.capabilities,
    };
    this.#maxTokensField = options.maxTokensField ?? 'max_tokens';
    this.#maxEventBytes = options.maxEventBytes ?? 1_048_576;
    this.#http = new ProviderHttp({
      ...options,
      headers: {
        ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }),
        ...options.extraHeaders,
      },
    });
  }

  async doChat(request: ChatRequest, options: ProviderCallOptions): Promise<ChatResponse> {
    const body = await this.#http.json(
      '/chat/completions',
      this.#body(request, false),
      options.signal,
    );
    const completion = parseProtocol(this.id, CompletionSchema, body, 'chat completion');
    const choice = completion.choices[0] as (typeof completion.choices)[number];
    const toolCalls: ToolCall[] = (choice.message.tool_calls ?? []).map((call, index) => ({
      id: call.id ?? `call_${index}`,
      name: call.function.name,
      arguments: parseToolArguments(this.id, call.function.name, call.function.arguments),
    }));
    return {
      text: choice.message.content ?? '',
      toolCalls,
      finishReason: finishReason(choice.finish_reason, toolCalls.length > 0),
      usage: toUsage(completion.usage),
      model: completion.model || request.model,
    };
  }

  async *doStream(request: ChatRequest, options: ProviderCallOptions): AsyncGenerator<ChatDelta> {
    const call = await this.#http.request('/chat/completions', {
      method: 'POST',
      body: this.#body(request, true),
      signal: options.signal,
    });
    const assembler = new ToolCallAssembler(this.id);
    let finish: string | undefined;
    let usage: ChatResponse['usage'];
    let model = request.model;
    let done = false;
    let sawToolCalls = false;
    try {
      const events = decodeServerSentEvents(
        boundedChunks(call.response.body, this.#http.options.maxResponseBytes),
        { maxEventBytes: this.#maxEventBytes },
      );
      for await (const event of events) {
        if (event.data === '[DONE]') {
          done = true;
          break;
        }
        const chunk = parseProtocol(
          this.id,
          ChunkSchema,
          parseProviderJson(this.id, event.data, 'stream event'),
          'stream chunk',
        );
        if (chunk.model !== undefined && chunk.model !== '') model = chunk.model;
        if (chunk.usage !== undefined && chunk.usage !== null) usage = toUsage(chunk.usage);
        for (const choice of chunk.choices) {
          const delta = choice.delta;
          if (delta?.content) yield { type: 'text', text: delta.content };
          for (const fragment of delta?.tool_calls ?? []) {
            sawToolCalls = true;
            yield* assembler.fragment(
              fragment.index,
              fragment.id ?? undefined,
              fragment.function?.name ?? undefined,
              fragment.function?.arguments ?? undefined,
            );
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    } catch (error) {
      throw call.failure(error, true);
    } finally {
      call.finish();
    }
    // A body that ends without `[DONE]` is complete only if the last choice had finished.
    if (!done && finish === undefined) {
      throw new KeelError(
        'KEEL_PROVIDER_STREAM_INTERRUPTED',
        `the stream from provider ${this.id} ended before the answer was complete`,
        {
          details: { provider: this.id, reason: assembler.pending ? 'mid-tool-call' : 'no-finish' },
        },
      );
    }
    yield* assembler.complete();
    yield {
      type: 'finish',
      finishReason: finishReason(finish, sawToolCalls),
      usage,
      model,
    };
  }

  async doEmbed(request: EmbedRequest, options: ProviderCallOptions): Promise<EmbedResponse> {
    const body = await this.#http.json(
      '/embeddings',
      {
        model: request.model,
        input: request.inputs,
        ...(request.dimensions === undefined ? {} : { dimensions: request.dimensions }),
      },
      options.signal,
    );
    const result = parseProtocol(this.id, EmbeddingSchema, body, 'embedding response');
    if (result.data.length !== request.inputs.length) {
      throw new KeelError(
        'KEEL_PROVIDER_PROTOCOL',
        `provider ${this.id} returned ${result.data.length} embeddings for ${request.inputs.length} inputs`,
        { details: { provider: this.id, reason: 'embedding-count' } },
      );
    }
    const embeddings = [...result.data].sort((left, right) => left.index - right.index);
    return {
      embeddings: embeddings.map((item) => item.embedding),
      usage: result.usage ? { inputTokens: result.usage.prompt_tokens } : undefined,
      model: result.model || request.model,
    };
  }

  async doHealthCheck(options: ProviderCallOptions): Promise<void> {
    await this.#http.json('/models', undefined, options.signal, 'GET');
  }

  #body(request: ChatRequest, stream: boolean): JsonObject {
    const body: Record<string, unknown> = {
      model: request.model,
      messages: request.messages.map(toWireMessage),
    };
    if (request.tools !== undefined && request.tools.length > 0) {
      body.tools = request.tools.map((tool) => ({
        type: 'function',
        function: {
          name: tool.name,
          ...(tool.description === undefined ? {} : { description: tool.description }),
          parameters: tool.parameters,
        },
      }));
      if (request.toolChoice !== undefined) {
        body.tool_choice =
          typeof request.toolChoice === 'string'
            ? request.toolChoice
            : { type: 'function', function: { name: request.toolChoice.name } };
      }
    }
    const format = request.responseFormat;
    if (format?.type === 'json') body.response_format = { type: 'json_object' };
    if (format?.type === 'json-schema') {
      body.response_format = {
        type: 'json_schema',
        json_schema: { name: format.name, schema: format.schema, strict: true },
      };
    }
    if (request.maxOutputTokens !== undefined) body[this.#maxTokensField] = request.maxOutputTokens;
    if (request.temperature !== undefined) body.temperature = request.temperature;
    if (request.topP !== undefined) body.top_p = request.topP;
    if (request.stop !== undefined && request.stop.length > 0) body.stop = request.stop;
    if (stream) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    return body as JsonObject;
  }
}

function toWireMessage(message: ChatMessage): Record<string, unknown> {
  switch (message.role) {
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
    case 'assistant':
      return message.toolCalls === undefined || message.toolCalls.length === 0
        ? { role: 'assistant', content: message.content }
        : {
            role: 'assistant',
            content: message.content === '' ? null : message.content,
            tool_calls: message.toolCalls.map((call) => ({
              id: call.id,
              type: 'function',
              function: { name: call.name, arguments: JSON.stringify(call.arguments) },
            })),
          };
    default:
      return { role: message.role, content: message.content };
  }
}

function toUsage(
  usage: { prompt_tokens: number; completion_tokens: number } | null | undefined,
): ChatResponse['usage'] {
  return usage
    ? { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens }
    : undefined;
}

function finishReason(reason: string | null | undefined, hasToolCalls: boolean): FinishReason {
  switch (reason) {
    case 'stop':
      return hasToolCalls ? 'tool-calls' : 'stop';
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool-calls';
    case 'content_filter':
      return 'content-filter';
    default:
      return hasToolCalls ? 'tool-calls' : 'other';
  }
}
