import type { MockAnswer, MockChatRequest } from './mock-conversation.ts';

/** A chunk of a streamed answer; `insideToolCall` marks where a cut leaves a call half-sent. */
export interface MockFrame {
  readonly text: string;
  readonly insideToolCall?: boolean;
}

export type MockParsedChat =
  | {
      readonly ok: true;
      readonly request: MockChatRequest;
      readonly stream: boolean;
      readonly includeUsage: boolean;
    }
  | { readonly ok: false; readonly message: string };

/**
 * One provider wire format as the mock server speaks it: how a chat request reads, how an
 * answer is written whole and streamed, and how errors look.
 */
export interface MockWireFormat {
  readonly name: 'openai' | 'anthropic' | 'ollama';
  readonly streamContentType: string;
  parseChat(body: unknown): MockParsedChat;
  renderChat(answer: MockAnswer, model: string, id: string): unknown;
  streamChat(answer: MockAnswer, model: string, id: string, includeUsage: boolean): MockFrame[];
  errorBody(status: number, message: string): unknown;
  /** A stream frame that is not valid in this format (for the malformed-json fault). */
  malformedFrame(): string;
}

/**
 * Splits text into stream pieces of about `size` characters on word boundaries.
 *
 * @example
 * ```ts
 * splitForStream('one two three', 4); // ['one ', 'two ', 'three']
 * ```
 */
export function splitForStream(text: string, size = 16): string[] {
  if (text === '') return [];
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + size);
    const space = text.indexOf(' ', end - 1);
    if (space !== -1 && space - start < size * 2) end = space + 1;
    // Never split a surrogate pair between two pieces.
    const code = text.charCodeAt(end - 1);
    if (end < text.length && code >= 0xd800 && code <= 0xdbff) end += 1;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

/** Reads `content` that is a string or a list of text parts into plain text. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: unknown) => {
      if (typeof part !== 'object' || part === null) return '';
      const record = part as Record<string, unknown>;
      if (typeof record.text === 'string') return record.text;
      if (record.type === 'tool_result') return contentText(record.content);
      return '';
    })
    .join('');
}

/** The JSON value as an object, or `undefined`. */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Reads the chat request shape OpenAI and Ollama share: `model`, `messages` of role and
 * content, and `tools` whose names sit under `function`. Answers the body as a record too, for
 * the format's own fields (`stream`, `stream_options`).
 *
 * @example
 * ```ts
 * const read = readFunctionToolsChat(body, 'a chat completion');
 * if ('message' in read) return { ok: false, message: read.message };
 * ```
 */
export function readFunctionToolsChat(
  body: unknown,
  what: string,
):
  | { readonly record: Record<string, unknown>; readonly request: MockChatRequest }
  | { readonly message: string } {
  const record = asRecord(body);
  if (record === undefined || typeof record.model !== 'string' || !Array.isArray(record.messages)) {
    return { message: `${what} needs model (string) and messages (array)` };
  }
  const tools = Array.isArray(record.tools) ? record.tools : [];
  return {
    record,
    request: {
      model: record.model,
      messages: record.messages.map((message: unknown) => {
        const item = asRecord(message) ?? {};
        return { role: String(item.role ?? ''), content: contentText(item.content) };
      }),
      toolNames: tools.map((tool: unknown) =>
        String(asRecord(asRecord(tool)?.function)?.name ?? ''),
      ),
    },
  };
}
