import { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import { boundedChunks } from '../http/bounded-body.ts';
import { decodeNdjson } from '../http/ndjson-decoder.ts';
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
import { parseProtocol } from './parse-protocol.ts';
import { ProviderHttp, type ProviderHttpOptions } from './provider-http.ts';

export interface OllamaOptions extends Omit<ProviderHttpOptions, 'headers' | 'baseUrl'> {
  /** Default `http://127.0.0.1:11434`. */
  readonly baseUrl?: string;
  readonly capabilities?: Partial<ProviderCapabilities>;
  /** How long Ollama keeps the model loaded after a call (its `keep_alive`). */
  readonly keepAlive?: string;
  readonly maxLineBytes?: number;
}

const ToolCallSchema = z.looseObject({
  id: z.string().max(256).optional(),
  function: z.looseObject({
    name: z.string().max(256),
    arguments: z.record(z.string(), z.unknown()).default({}),
  }),
});

const ChatChunkSchema = z.looseObject({
  model: z.string().max(256).default(''),
  message: z
    .looseObject({
      content: z.string().default(''),
      tool_calls: z.array(ToolCallSchema).max(128).nullish(),
    })
    .optional(),
  done: z.boolean(),
  done_reason: z.string().nullish(),
  prompt_eval_count: z.number().int().nonnegative().nullish(),
  eval_count: z.number().int().nonnegative().nullish(),
  error: z.string().optional(),
});

const EmbedSchema = z.looseObject({
  model: z.string().max(256).default(''),
  embeddings: z.array(z.array(z.number())),
  prompt_eval_count: z.number().int().nonnegative().nullish(),
});

/**
 * Ollama's native API: `/api/chat` (NDJSON streaming, whole tool calls, `format` for JSON and
 * JSON-schema output) and `/api/embed`. Ollama reports usage as `prompt_eval_count` and
 * `eval_count`; a prompt served from its cache may report fewer prompt tokens.
 *
 * @example
 * ```ts
 * const provider = new OllamaProvider({ providerId: 'local', timeoutMs: 300_000, maxResponseBytes: 8_388_608 });
 * ```
 */
export class OllamaProvider implements ModelProviderV1 {
  readonly specificationVersion = 'v1';
  readonly kind = 'ollama';
  readonly id: string;
  readonly capabilities: ProviderCapabilities;
  readonly #http: ProviderHttp;
  readonly #keepAlive: string | undefined;
  readonly #maxLineBytes: number;

  constructor(options: OllamaOptions) {
    this.id = options.providerId;
    this.capabilities = {
      nativeTools: true,
      jsonSchema: true,
      embeddings: true,
      ...options.capabilities,
    };
    this.#keepAlive = options.keepAlive;
    this.#maxLineBytes = options.maxLineBytes ?? 1_048_576;
    this.#http = new ProviderHttp({
      ...options,
      baseUrl: options.baseUrl ?? 'http://127.0.0.1:11434',
      headers: {},
    });
  }

  async doChat(request: ChatRequest, options: ProviderCallOptions): Promise<ChatResponse> {
    const body = await this.#http.json('/api/chat', this.#body(request, false), options.signal);
    const chunk = parseProtocol(this.id, ChatChunkSchema, body, 'chat response');
    if (chunk.error !== undefined) throw this.#inlineError(chunk.error);
    const toolCalls = this.#toolCalls(chunk.message?.tool_calls, 0);
    return {
      text: chunk.message?.content ?? '',
      toolCalls,
      finishReason: doneReason(chunk.done_reason, toolCalls.length > 0),
      usage: toUsage(chunk),
      model: chunk.model || request.model,
    };
  }

  async *doStream(request: ChatRequest, options: ProviderCallOptions): AsyncGenerator<ChatDelta> {
    const call = await this.#http.request('/api/chat', {
      method: 'POST',
      body: this.#body(request, true),
      signal: options.signal,
    });
    let last: z.output<typeof ChatChunkSchema> | undefined;
    let toolCount = 0;
    try {
      const lines = decodeNdjson(
        boundedChunks(call.response.body, this.#http.options.maxResponseBytes),
        {
          maxLineBytes: this.#maxLineBytes,
        },
      );
      for await (const line of lines) {
        const chunk = parseProtocol(this.id, ChatChunkSchema, line, 'stream chunk');
        if (chunk.error !== undefined) throw this.#inlineError(chunk.error);
        if (chunk.message?.content) yield { type: 'text', text: chunk.message.content };
        for (const toolCall of this.#toolCalls(chunk.message?.tool_calls, toolCount)) {
          const index = toolCount;
          toolCount += 1;
          yield { type: 'tool-call-start', index, id: toolCall.id, name: toolCall.name };
          yield { type: 'tool-call-arguments', index, text: JSON.stringify(toolCall.arguments) };
          yield { type: 'tool-call', index, call: toolCall };
        }
        if (chunk.done) {
          last = chunk;
          break;
        }
      }
    } catch (error) {
      throw call.failure(error, true);
    } finally {
      call.finish();
    }
    if (last === undefined) {
      throw new KeelError(
        'KEEL_PROVIDER_STREAM_INTERRUPTED',
        `the stream from provider ${this.id} ended before its done line`,
        { details: { provider: this.id, reason: 'no-finish' } },
      );
    }
    yield {
      type: 'finish',
      finishReason: doneReason(last.done_reason, toolCount > 0),
      usage: toUsage(last),
      model: last.model || request.model,
    };
  }

  async doEmbed(request: EmbedRequest, options: ProviderCallOptions): Promise<EmbedResponse> {
    const body = await this.#http.json(
      '/api/embed',
      {
        model: request.model,
        input: request.inputs,
        ...(request.dimensions === undefined ? {} : { dimensions: request.dimensions }),
        ...(this.#keepAlive === undefined ? {} : { keep_alive: this.#keepAlive }),
      },
      options.signal,
    );
    const result = parseProtocol(this.id, EmbedSchema, body, 'embed response');
    if (result.embeddings.length !== request.inputs.length) {
      throw new KeelError(
        'KEEL_PROVIDER_PROTOCOL',
        `provider ${this.id} returned ${result.embeddings.length} embeddings for ${request.inputs.length} inputs`,
        { details: { provider: this.id, reason: 'embedding-count' } },
      );
    }
    return {
      embeddings: result.embeddings,
      usage:
        result.prompt_eval_count == null ? undefined : { inputTokens: result.prompt_eval_count },
      model: result.model || request.model,
    };
  }

  async doHealthCheck(options: ProviderCallOptions): Promise<void> {
    await this.#http.json('/api/tags', undefined, options.signal, 'GET');
  }

  #toolCalls(
    calls: readonly z.output<typeof ToolCallSchema>[] | null | undefined,
    offset: number,
  ): ToolCall[] {
    return (calls ?? []).map((call, index) => ({
      // Ollama's calls have no ids; the position in the answer stands in for one.
      id: call.id ?? `call_${offset + index}`,
      name: call.function.name,
      arguments: call.function.arguments as JsonObject,
    }));
  }

  #inlineError(message: string): KeelError {
    return new KeelError(
      'KEEL_PROVIDER_UNAVAILABLE',
      `provider ${this.id} failed: ${message.slice(0, 500)}`,
      {
        details: { provider: this.id, providerMessage: message.slice(0, 500) },
      },
    );
  }

  #body(request: ChatRequest, stream: boolean): JsonObject {
    const body: Record<string, unknown> = {
      model: request.model,
      messages: request.messages.map(toWireMessage),
      stream,
    };
    if (request.tools !== undefined && request.tools.length > 0 && request.toolChoice !== 'none') {
      body.tools = request.tools.map((tool) => ({
        type: 'function',
        function: {
          name: tool.name,
          ...(tool.description === undefined ? {} : { description: tool.description }),
          parameters: tool.parameters,
        },
      }));
    }
    const format = request.responseFormat;
    if (format?.type === 'json') body.format = 'json';
    if (format?.type === 'json-schema') body.format = format.schema;
    const modelOptions: Record<string, unknown> = {};
    if (request.maxOutputTokens !== undefined) modelOptions.num_predict = request.maxOutputTokens;
    if (request.temperature !== undefined) modelOptions.temperature = request.temperature;
    if (request.topP !== undefined) modelOptions.top_p = request.topP;
    if (request.stop !== undefined && request.stop.length > 0) modelOptions.stop = request.stop;
    if (Object.keys(modelOptions).length > 0) body.options = modelOptions;
    if (this.#keepAlive !== undefined) body.keep_alive = this.#keepAlive;
    return body as JsonObject;
  }
}

function toWireMessage(message: ChatMessage): Record<string, unknown> {
  switch (message.role) {
    case 'tool':
      return {
        role: 'tool',
        content: message.content,
        ...(message.name === undefined ? {} : { tool_name: message.name }),
      };
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls === undefined || message.toolCalls.length === 0
          ? {}
          : {
              tool_calls: message.toolCalls.map((call) => ({
                function: { name: call.name, arguments: call.arguments },
              })),
            }),
      };
    default:
      return { role: message.role, content: message.content };
  }
}

function toUsage(chunk: z.output<typeof ChatChunkSchema>): ChatResponse['usage'] {
  if (chunk.prompt_eval_count == null && chunk.eval_count == null) return undefined;
  return { inputTokens: chunk.prompt_eval_count ?? 0, outputTokens: chunk.eval_count ?? 0 };
}

function doneReason(reason: string | null | undefined, hasToolCalls: boolean): FinishReason {
  if (hasToolCalls) return 'tool-calls';
  if (reason === 'length') return 'length';
  if (reason === 'stop' || reason === undefined || reason === null) return 'stop';
  return 'other';
}
