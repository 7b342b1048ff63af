/**
 * A provider decorator that gives tool calling to a model that lacks it natively: the tools
 * go into the system prompt as text, the tool history is rewritten as text, and the answer is
 * parsed for text tool calls.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type {
  ChatDelta,
  ChatMessage,
  ChatRequest,
  ChatResponse,
  FinishReason,
  ModelProviderV1,
  ProviderCallOptions,
  ToolCall,
  ToolChoice,
} from '../provider/model-provider.ts';
import {
  formatTextToolCalls,
  type TextToolCallStyle,
  textToolCallInstructions,
} from './format-text-tool-calls.ts';
import { parseTextToolCalls } from './text-tool-call-parser.ts';

/**
 * Wraps a provider without native tool calling so that it accepts `tools`.
 *
 * When a request offers tools (and `toolChoice` is not `none`), the tools and `toolChoice`
 * leave the request and their instructions join the system message (appended to a leading
 * system message, or a new one first). Whenever the request has tools, a `toolChoice` or tool
 * history, earlier assistant `toolCalls` become text in `style` and `tool` messages become
 * user messages `<tool_response name="x" id="call_0">…</tool_response>` (consecutive ones in
 * one message). The answer is parsed: `doChat` returns the calls, the prose as `text` and
 * finish reason `tool-calls` when any call was parsed. `doStream` buffers the inner stream and
 * emits, at its end, one `text` delta (if any prose), `tool-call-start`, `tool-call-arguments`
 * and `tool-call` per call, then the inner `finish` with the adjusted reason; inner errors
 * propagate unchanged. When no call was parsed the text is the inner text, untouched.
 *
 * A request without tools, `toolChoice` or tool history passes through untouched. The result
 * keeps `specificationVersion`, `id` and `kind`, reports `nativeTools: true`, and delegates
 * embeddings and health checks.
 *
 * @example
 * ```ts
 * const provider = withTextToolCalls(ollamaProvider, 'hermes');
 * const response = await provider.doChat({ model: 'llama3', messages, tools }, { signal });
 * response.toolCalls; // parsed from the model's text
 * ```
 */
export function withTextToolCalls(
  provider: ModelProviderV1,
  style: TextToolCallStyle,
): ModelProviderV1 {
  return Object.freeze({
    specificationVersion: 'v1',
    id: provider.id,
    kind: provider.kind,
    capabilities: Object.freeze({ ...provider.capabilities, nativeTools: true }),
    async doChat(request: ChatRequest, options: ProviderCallOptions): Promise<ChatResponse> {
      const plan = planRequest(request, style);
      if (plan === undefined) return provider.doChat(request, options);
      const response = await provider.doChat(plan.request, options);
      if (plan.toolNames === undefined) return response;
      const parsed = parseTextToolCalls(response.text, { toolNames: plan.toolNames });
      if (parsed.toolCalls.length === 0) return response;
      return {
        ...response,
        text: parsed.text,
        toolCalls: [...response.toolCalls, ...renumber(parsed.toolCalls, response.toolCalls)],
        finishReason: 'tool-calls',
      };
    },
    doStream(request: ChatRequest, options: ProviderCallOptions): AsyncIterable<ChatDelta> {
      const plan = planRequest(request, style);
      if (plan === undefined) return provider.doStream(request, options);
      if (plan.toolNames === undefined) return provider.doStream(plan.request, options);
      return streamWithTextToolCalls(provider, plan.request, plan.toolNames, options);
    },
    doEmbed: (request, options) => provider.doEmbed(request, options),
    doHealthCheck: (options) => provider.doHealthCheck(options),
  } satisfies ModelProviderV1);
}

interface RequestPlan {
  /** The request for the inner provider: no tools, tool history as text. */
  readonly request: ChatRequest;
  /** The tools on offer, or `undefined` when the answer is not to be parsed. */
  readonly toolNames: ReadonlySet<string> | undefined;
}

function planRequest(request: ChatRequest, style: TextToolCallStyle): RequestPlan | undefined {
  const hasToolHistory = request.messages.some(
    (message) =>
      message.role === 'tool' ||
      (message.role === 'assistant' && (message.toolCalls?.length ?? 0) > 0),
  );
  if (request.tools === undefined && request.toolChoice === undefined && !hasToolHistory) {
    return undefined;
  }
  const { tools = [], toolChoice, ...rest } = request;
  const offersTools = tools.length > 0 && toolChoice !== 'none';
  let messages = rewriteHistory(request.messages, style);
  if (offersTools) {
    const instructions = [textToolCallInstructions(tools, style), choiceRule(toolChoice)]
      .filter((part) => part !== '')
      .join('\n');
    messages = withSystemInstructions(messages, instructions);
  }
  return {
    request: { ...rest, messages },
    toolNames: offersTools ? new Set(tools.map((tool) => tool.name)) : undefined,
  };
}

function choiceRule(toolChoice: ToolChoice | undefined): string {
  if (toolChoice === 'required') return 'You must call at least one tool in your answer.';
  if (typeof toolChoice === 'object') return `You must call the tool ${toolChoice.name}.`;
  return '';
}

function withSystemInstructions(
  messages: readonly ChatMessage[],
  instructions: string,
): ChatMessage[] {
  const [first, ...others] = messages;
  if (first?.role === 'system') {
    return [{ role: 'system', content: `${first.content}\n\n${instructions}` }, ...others];
  }
  return [{ role: 'system', content: instructions }, ...messages];
}

function rewriteHistory(messages: readonly ChatMessage[], style: TextToolCallStyle): ChatMessage[] {
  const namesById = new Map<string, string>();
  const rewritten: ChatMessage[] = [];
  let previousWasToolResponse = false;
  for (const message of messages) {
    if (message.role === 'tool') {
      const name = message.name ?? namesById.get(message.toolCallId);
      const response = toolResponse(message.content, message.toolCallId, name);
      const last = rewritten.at(-1);
      if (previousWasToolResponse && last !== undefined) {
        rewritten[rewritten.length - 1] = { role: 'user', content: `${last.content}\n${response}` };
      } else {
        rewritten.push({ role: 'user', content: response });
      }
      previousWasToolResponse = true;
      continue;
    }
    previousWasToolResponse = false;
    if (message.role === 'assistant' && message.toolCalls !== undefined) {
      for (const call of message.toolCalls) namesById.set(call.id, call.name);
      const calls = formatTextToolCalls(message.toolCalls, style);
      const content = [message.content, calls].filter((part) => part !== '').join('\n');
      rewritten.push({ role: 'assistant', content });
      continue;
    }
    rewritten.push(message);
  }
  return rewritten;
}

function toolResponse(content: string, id: string, name: string | undefined): string {
  const nameAttribute = name === undefined ? '' : ` name="${escapeAttribute(name)}"`;
  return `<tool_response${nameAttribute} id="${escapeAttribute(id)}">\n${content}\n</tool_response>`;
}

function escapeAttribute(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('"', '&quot;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;');
}

/**
 * Parsed ids are `call_0`, `call_1`, …; should the inner provider have answered with native
 * calls anyway (it was offered no tools), the parsed ones are numbered after them.
 */
function renumber(parsed: readonly ToolCall[], native: readonly ToolCall[]): ToolCall[] {
  if (native.length === 0) return [...parsed];
  return parsed.map((call, index) => ({ ...call, id: `call_${native.length + index}` }));
}

async function* streamWithTextToolCalls(
  provider: ModelProviderV1,
  request: ChatRequest,
  toolNames: ReadonlySet<string>,
  options: ProviderCallOptions,
): AsyncGenerator<ChatDelta> {
  const pieces: string[] = [];
  let finish: Extract<ChatDelta, { type: 'finish' }> | undefined;
  let nativeCalls = 0;
  for await (const delta of provider.doStream(request, options)) {
    if (delta.type === 'text') {
      pieces.push(delta.text);
    } else if (delta.type === 'finish') {
      finish = delta;
    } else {
      // Native calls the inner provider made anyway go through as they come.
      if (delta.type === 'tool-call') nativeCalls = Math.max(nativeCalls, delta.index + 1);
      yield delta;
    }
  }
  if (finish === undefined) {
    throw new KeelError(
      'KEEL_PROVIDER_STREAM_INTERRUPTED',
      `the stream of provider ${provider.id} ended without a finish`,
      { details: { providerId: provider.id } },
    );
  }
  const text = pieces.join('');
  const parsed = parseTextToolCalls(text, { toolNames });
  if (parsed.toolCalls.length === 0) {
    if (text !== '') yield { type: 'text', text };
    yield finish;
    return;
  }
  if (parsed.text !== '') yield { type: 'text', text: parsed.text };
  for (const [offset, parsedCall] of parsed.toolCalls.entries()) {
    const index = nativeCalls + offset;
    const call = nativeCalls === 0 ? parsedCall : { ...parsedCall, id: `call_${index}` };
    yield { type: 'tool-call-start', index, id: call.id, name: call.name };
    yield { type: 'tool-call-arguments', index, text: JSON.stringify(call.arguments) };
    yield { type: 'tool-call', index, call };
  }
  const finishReason: FinishReason = 'tool-calls';
  yield { ...finish, finishReason };
}
