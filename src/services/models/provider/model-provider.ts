import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';

/**
 * The versioned provider specification every model adapter implements (OpenAI-compatible,
 * Anthropic, Ollama, and decorators over them). Callers never use the `do*` methods directly:
 * the router is the checked caller that adds deadlines, retries, failover, circuit breaking,
 * rate limits and accounting.
 *
 * Errors are `KeelError`s with `KEEL_PROVIDER_*` codes (`retryable`, `status` in `details`,
 * `retryAfterMs`), or `KEEL_ABORTED` / `KEEL_TIMEOUT` when the signal ended the call.
 *
 * @example
 * ```ts
 * const response = await provider.doChat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { signal });
 * ```
 */
export interface ModelProviderV1 {
  readonly specificationVersion: 'v1';
  /** The configured provider name, e.g. `openai` or `local-ollama`. */
  readonly id: string;
  readonly kind: ProviderKind;
  readonly capabilities: ProviderCapabilities;
  doChat(request: ChatRequest, options: ProviderCallOptions): Promise<ChatResponse>;
  /** Streams typed deltas; the last one is always `finish` when the stream completed. */
  doStream(request: ChatRequest, options: ProviderCallOptions): AsyncIterable<ChatDelta>;
  doEmbed(request: EmbedRequest, options: ProviderCallOptions): Promise<EmbedResponse>;
  /** Resolves when the endpoint answers like the provider it should be; throws otherwise. */
  doHealthCheck(options: ProviderCallOptions): Promise<void>;
}

export type ProviderKind = 'openai-compatible' | 'anthropic' | 'ollama';

export interface ProviderCapabilities {
  /** The provider returns structured tool calls; otherwise tools go through the text parser. */
  readonly nativeTools: boolean;
  /** The provider constrains output to a JSON schema. */
  readonly jsonSchema: boolean;
  readonly embeddings: boolean;
}

export interface ProviderCallOptions {
  readonly signal: AbortSignal;
}

/** One tool call the model asked for; `arguments` is always a parsed JSON object. */
export interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: JsonObject;
}

export type ChatMessage =
  | { readonly role: 'system'; readonly content: string }
  | { readonly role: 'user'; readonly content: string }
  | {
      readonly role: 'assistant';
      readonly content: string;
      readonly toolCalls?: readonly ToolCall[];
    }
  | {
      readonly role: 'tool';
      readonly toolCallId: string;
      readonly name?: string;
      readonly content: string;
    };

export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  /** A JSON Schema for the arguments object. */
  readonly parameters: JsonObject;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { readonly name: string };

export type ResponseFormat =
  | { readonly type: 'text' }
  | { readonly type: 'json' }
  | { readonly type: 'json-schema'; readonly name: string; readonly schema: JsonObject };

export interface ChatRequest {
  /** The provider's own model id (the router has already resolved aliases). */
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly tools?: readonly ToolDefinition[];
  readonly toolChoice?: ToolChoice;
  readonly responseFormat?: ResponseFormat;
  readonly maxOutputTokens?: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly stop?: readonly string[];
}

export interface TokenUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export type FinishReason = 'stop' | 'length' | 'tool-calls' | 'content-filter' | 'other';

export interface ChatResponse {
  readonly text: string;
  readonly toolCalls: readonly ToolCall[];
  readonly finishReason: FinishReason;
  /** As the provider reported it; `undefined` when it reported none. */
  readonly usage: TokenUsage | undefined;
  /** The model the provider says answered. */
  readonly model: string;
}

export type ChatDelta =
  | { readonly type: 'text'; readonly text: string }
  | {
      readonly type: 'tool-call-start';
      readonly index: number;
      readonly id: string;
      readonly name: string;
    }
  | { readonly type: 'tool-call-arguments'; readonly index: number; readonly text: string }
  /** A tool call whose arguments are complete and parsed. */
  | { readonly type: 'tool-call'; readonly index: number; readonly call: ToolCall }
  | {
      readonly type: 'finish';
      readonly finishReason: FinishReason;
      readonly usage: TokenUsage | undefined;
      readonly model: string;
    };

export interface EmbedRequest {
  readonly model: string;
  readonly inputs: readonly string[];
  readonly dimensions?: number;
}

export interface EmbedResponse {
  readonly embeddings: readonly (readonly number[])[];
  readonly usage: { readonly inputTokens: number } | undefined;
  readonly model: string;
}
