import type { MockAnswer } from './mock-conversation.ts';
import {
  asRecord,
  contentText,
  type MockFrame,
  type MockParsedChat,
  type MockWireFormat,
  splitForStream,
} from './mock-wire-format.ts';

function event(name: string, value: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(value)}\n\n`;
}

function stopReason(answer: MockAnswer): string {
  if (answer.finishReason === 'tool-calls') return 'tool_use';
  return answer.finishReason === 'length' ? 'max_tokens' : 'end_turn';
}

/** The Anthropic Messages wire format of the mock server. */
export const mockAnthropicWire: MockWireFormat = {
  name: 'anthropic',
  streamContentType: 'text/event-stream',

  parseChat(body: unknown): MockParsedChat {
    const record = asRecord(body);
    if (
      record === undefined ||
      typeof record.model !== 'string' ||
      !Array.isArray(record.messages) ||
      typeof record.max_tokens !== 'number'
    ) {
      return { ok: false, message: 'a message request needs model, messages and max_tokens' };
    }
    const messages: { role: string; content: string }[] = [];
    const system = contentText(record.system);
    if (system !== '') messages.push({ role: 'system', content: system });
    for (const message of record.messages) {
      const item = asRecord(message) ?? {};
      const role = String(item.role ?? '');
      const blocks = Array.isArray(item.content) ? item.content : [];
      // A user turn made of tool results is the tool's answer, as the other formats see it.
      const isToolResult =
        role === 'user' &&
        blocks.length > 0 &&
        blocks.every((block) => asRecord(block)?.type === 'tool_result');
      messages.push({ role: isToolResult ? 'tool' : role, content: contentText(item.content) });
    }
    const tools = Array.isArray(record.tools) ? record.tools : [];
    return {
      ok: true,
      request: {
        model: record.model,
        messages,
        toolNames: tools.map((tool: unknown) => String(asRecord(tool)?.name ?? '')),
      },
      stream: record.stream === true,
      includeUsage: true,
    };
  },

  renderChat(answer, model, id) {
    return {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [
        ...(answer.text === '' ? [] : [{ type: 'text', text: answer.text }]),
        ...answer.toolCalls.map((call) => ({
          type: 'tool_use',
          id: call.id,
          name: call.name,
          input: call.arguments,
        })),
      ],
      stop_reason: stopReason(answer),
      stop_sequence: null,
      usage: { input_tokens: answer.usage.inputTokens, output_tokens: answer.usage.outputTokens },
    };
  },

  streamChat(answer, model, id) {
    const frames: MockFrame[] = [
      {
        text: event('message_start', {
          type: 'message_start',
          message: {
            id,
            type: 'message',
            role: 'assistant',
            model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: answer.usage.inputTokens, output_tokens: 1 },
          },
        }),
      },
      { text: event('ping', { type: 'ping' }) },
    ];
    let index = 0;
    if (answer.text !== '') {
      frames.push({
        text: event('content_block_start', {
          type: 'content_block_start',
          index,
          content_block: { type: 'text', text: '' },
        }),
      });
      for (const piece of splitForStream(answer.text)) {
        frames.push({
          text: event('content_block_delta', {
            type: 'content_block_delta',
            index,
            delta: { type: 'text_delta', text: piece },
          }),
        });
      }
      frames.push({ text: event('content_block_stop', { type: 'content_block_stop', index }) });
      index += 1;
    }
    for (const call of answer.toolCalls) {
      frames.push({
        text: event('content_block_start', {
          type: 'content_block_start',
          index,
          content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} },
        }),
      });
      for (const piece of splitForStream(JSON.stringify(call.arguments), 12)) {
        frames.push({
          text: event('content_block_delta', {
            type: 'content_block_delta',
            index,
            delta: { type: 'input_json_delta', partial_json: piece },
          }),
          insideToolCall: true,
        });
      }
      frames.push({ text: event('content_block_stop', { type: 'content_block_stop', index }) });
      index += 1;
    }
    frames.push({
      text: event('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: stopReason(answer), stop_sequence: null },
        usage: { output_tokens: answer.usage.outputTokens },
      }),
    });
    frames.push({ text: event('message_stop', { type: 'message_stop' }) });
    return frames;
  },

  errorBody(status, message) {
    const type =
      status === 429
        ? 'rate_limit_error'
        : status === 529
          ? 'overloaded_error'
          : status >= 500
            ? 'api_error'
            : 'invalid_request_error';
    return { type: 'error', error: { type, message } };
  },

  malformedFrame() {
    return 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_de\n\n';
  },
};
