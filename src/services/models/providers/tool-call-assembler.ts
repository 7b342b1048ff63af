import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import type { ChatDelta, ToolCall } from '../provider/model-provider.ts';

interface PartialToolCall {
  id: string;
  name: string;
  argumentsText: string;
}

/**
 * Parses a tool call's arguments as a JSON object; anything else is a protocol error of the
 * provider (a model that emits broken JSON is retried like a garbled response).
 *
 * @example
 * ```ts
 * parseToolArguments('openai', 'read_file', '{"path":"a.ts"}'); // { path: 'a.ts' }
 * ```
 */
export function parseToolArguments(providerId: string, name: string, text: string): JsonObject {
  let value: unknown;
  try {
    value = text.trim() === '' ? {} : JSON.parse(text);
  } catch (error) {
    throw new KeelError(
      'KEEL_PROVIDER_PROTOCOL',
      `provider ${providerId} sent arguments for tool ${name} that are not JSON`,
      {
        cause: error,
        // The model's own output, not the provider's protocol: retrying would pay for the
        // same call again, so the caller decides.
        retryable: false,
        details: { provider: providerId, tool: name, reason: 'tool-arguments' },
      },
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new KeelError(
      'KEEL_PROVIDER_PROTOCOL',
      `provider ${providerId} sent arguments for tool ${name} that are not a JSON object`,
      {
        // The model's own output, not the provider's protocol: retrying would pay for the
        // same call again, so the caller decides.
        retryable: false,
        details: { provider: providerId, tool: name, reason: 'tool-arguments' },
      },
    );
  }
  return value as JsonObject;
}

/**
 * Assembles streamed tool calls (an id and name first, then argument fragments) into
 * complete calls, emitting the typed deltas of the provider spec along the way. A stream
 * that ends while a call is incomplete is the caller's to report as interrupted.
 *
 * @example
 * ```ts
 * const assembler = new ToolCallAssembler('openai');
 * yield* assembler.fragment(0, 'call_1', 'read_file', '{"pa');
 * yield* assembler.fragment(0, undefined, undefined, 'th":"a"}');
 * yield* assembler.complete();
 * ```
 */
export class ToolCallAssembler {
  readonly #providerId: string;
  readonly #calls = new Map<number, PartialToolCall>();
  readonly #maxCalls: number;

  constructor(providerId: string, maxCalls = 128) {
    this.#providerId = providerId;
    this.#maxCalls = maxCalls;
  }

  get pending(): boolean {
    return this.#calls.size > 0;
  }

  /** Whether call `index` has started. */
  has(index: number): boolean {
    return this.#calls.has(index);
  }

  /** Adds a fragment of call `index`; the first fragment of a call must carry its name. */
  *fragment(
    index: number,
    id: string | undefined,
    name: string | undefined,
    argumentsText: string | undefined,
  ): Generator<ChatDelta> {
    let call = this.#calls.get(index);
    if (call === undefined) {
      if (name === undefined || name === '') {
        throw new KeelError(
          'KEEL_PROVIDER_PROTOCOL',
          `provider ${this.#providerId} streamed tool call ${index} without a name`,
          { details: { provider: this.#providerId, reason: 'tool-call-without-name' } },
        );
      }
      if (this.#calls.size >= this.#maxCalls) {
        throw new KeelError(
          'KEEL_PROVIDER_PROTOCOL',
          `provider ${this.#providerId} streamed more than ${this.#maxCalls} tool calls`,
          { details: { provider: this.#providerId, reason: 'too-many-tool-calls' } },
        );
      }
      call = { id: id ?? `call_${index}`, name, argumentsText: '' };
      this.#calls.set(index, call);
      yield { type: 'tool-call-start', index, id: call.id, name: call.name };
    }
    if (argumentsText !== undefined && argumentsText !== '') {
      call.argumentsText += argumentsText;
      yield { type: 'tool-call-arguments', index, text: argumentsText };
    }
  }

  /** Emits every assembled call with parsed arguments, in index order, and forgets them. */
  *complete(): Generator<ChatDelta> {
    const indexes = [...this.#calls.keys()].sort((left, right) => left - right);
    const completed: { index: number; call: ToolCall }[] = indexes.map((index) => {
      const call = this.#calls.get(index) as PartialToolCall;
      return {
        index,
        call: {
          id: call.id,
          name: call.name,
          arguments: parseToolArguments(this.#providerId, call.name, call.argumentsText),
        },
      };
    });
    this.#calls.clear();
    for (const { index, call } of completed) yield { type: 'tool-call', index, call };
  }
}
