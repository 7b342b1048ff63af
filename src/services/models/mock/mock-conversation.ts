import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import type { MockConversation, MockFault, MockScript, MockToolCall } from './mock-script.ts';

/** A chat request as the mock sees it, whatever wire format it came in. */
export interface MockChatRequest {
  readonly model: string;
  readonly messages: readonly { readonly role: string; readonly content: string }[];
  readonly toolNames: readonly string[];
}

/** What the mock answers a chat request with. */
export interface MockAnswer {
  readonly text: string;
  readonly toolCalls: readonly MockToolCall[];
  readonly finishReason: 'stop' | 'length' | 'tool-calls';
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
  /** A fault scheduled by the script for this turn (only on its first request). */
  readonly fault: MockFault | undefined;
}

export type MockDecision =
  | { readonly kind: 'answer'; readonly answer: MockAnswer }
  | { readonly kind: 'mismatch'; readonly message: string };

/**
 * Tokens the mock reports for text: about four UTF-8 bytes a token, like English text
 * through a BPE tokenizer. Deterministic, so tests can predict usage.
 *
 * @example
 * ```ts
 * countMockTokens('hello world!'); // 3
 * ```
 */
export function countMockTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text) / 4);
}

/**
 * Plays scripted conversations statelessly: the turn is the number of assistant messages
 * already in the request, so any number of clients can play the same script at once and a
 * retried request gets the same turn. Each turn's scripted fault fires once.
 *
 * @example
 * ```ts
 * const player = new MockConversationPlayer(script);
 * const decision = player.decide({ model: 'mock-small', messages, toolNames: [] });
 * ```
 */
export class MockConversationPlayer {
  readonly #script: MockScript | undefined;
  readonly #firedFaults = new Set<string>();

  constructor(script: MockScript | undefined) {
    this.#script = script;
  }

  decide(request: MockChatRequest): MockDecision {
    const inputTokens = request.messages.reduce(
      (sum, message) => sum + 4 + countMockTokens(message.content),
      3,
    );
    const conversationIndex = this.#script?.conversations.findIndex((candidate) =>
      matches(candidate, request),
    );
    const conversation =
      conversationIndex === undefined || conversationIndex < 0
        ? undefined
        : this.#script?.conversations[conversationIndex];
    if (conversation === undefined) {
      if (this.#script?.strict === true) {
        return { kind: 'mismatch', message: 'mock script: no conversation matches this request' };
      }
      return { kind: 'answer', answer: echo(request, inputTokens) };
    }
    const turnIndex = request.messages.filter((message) => message.role === 'assistant').length;
    const turn = conversation.turns[turnIndex];
    if (turn === undefined) {
      return {
        kind: 'mismatch',
        message: `mock script: conversation ${conversation.name} has no turn ${turnIndex + 1} (it has ${conversation.turns.length})`,
      };
    }
    const latest = [...request.messages].reverse().find((message) => message.role !== 'assistant');
    if (turn.expect !== undefined) {
      if (turn.expect.role !== undefined && latest?.role !== turn.expect.role) {
        return {
          kind: 'mismatch',
          message: `mock script: turn ${turnIndex + 1} of ${conversation.name} expected a ${turn.expect.role} message, got ${latest?.role ?? 'none'}`,
        };
      }
      if (
        turn.expect.contains !== undefined &&
        !(latest?.content ?? '').includes(turn.expect.contains)
      ) {
        return {
          kind: 'mismatch',
          message: `mock script: turn ${turnIndex + 1} of ${conversation.name} expected the latest message to contain ${JSON.stringify(turn.expect.contains)}`,
        };
      }
    }
    let fault: MockFault | undefined;
    const faultKey = `${conversationIndex}\n${turnIndex}`;
    if (turn.fault !== undefined && !this.#firedFaults.has(faultKey)) {
      this.#firedFaults.add(faultKey);
      fault = turn.fault;
    }
    const toolCalls = turn.reply.toolCalls.map((call, index) => ({
      id: call.id ?? `call_${turnIndex}_${index}`,
      name: call.name,
      arguments: call.arguments as JsonObject,
    }));
    return {
      kind: 'answer',
      answer: {
        text: turn.reply.text,
        toolCalls,
        finishReason: toolCalls.length > 0 ? 'tool-calls' : turn.reply.finishReason,
        usage: turn.reply.usage ?? {
          inputTokens,
          outputTokens: outputTokens(turn.reply.text, toolCalls),
        },
        fault,
      },
    };
  }
}

function matches(conversation: MockConversation, request: MockChatRequest): boolean {
  const { model, contains } = conversation.match;
  if (model !== undefined && model !== request.model) return false;
  if (contains !== undefined) {
    const firstUser = request.messages.find((message) => message.role === 'user');
    if (firstUser === undefined || !firstUser.content.includes(contains)) return false;
  }
  return true;
}

function echo(request: MockChatRequest, inputTokens: number): MockAnswer {
  const latest = [...request.messages].reverse().find((message) => message.role === 'user');
  const text = `mock reply to: ${(latest?.content ?? '').slice(0, 200)}`;
  return {
    text,
    toolCalls: [],
    finishReason: 'stop',
    usage: { inputTokens, outputTokens: outputTokens(text, []) },
    fault: undefined,
  };
}

function outputTokens(text: string, toolCalls: readonly MockToolCall[]): number {
  let tokens = countMockTokens(text);
  for (const call of toolCalls)
    tokens += 4 + countMockTokens(call.name + JSON.stringify(call.arguments));
  return tokens;
}
