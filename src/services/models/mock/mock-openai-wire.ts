import type { MockAnswer } from './mock-conversation.ts';
import {
  asRecord,
  type MockFrame,
  type MockParsedChat,
  type MockWireFormat,
  readFunctionToolsChat,
  splitForStream,
} from './mock-wire-format.ts';

function sse(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

function finishReason(answer: MockAnswer): string {
  return answer.finishReason === 'tool-calls' ? 'tool_calls' : answer.finishReason;
}

/** The OpenAI Chat Completions wire format of the mock server. */
export const mockOpenAiWire: MockWireFormat = {
  name: 'openai',
  streamContentType: 'text/event-stream',

  parseChat(body: unknown): MockParsedChat {
    const read = readFunctionToolsChat(body, 'a chat completion');
    if ('message' in read) return { ok: false, message: read.message };
    return {
      ok: true,
      request: read.request,
      stream: read.record.stream === true,
      includeUsage: asRecord(read.record.stream_options)?.include_usage === true,
    };
  },

  renderChat(answer, model, id) {
    return {
      id,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: answer.toolCalls.length > 0 && answer.text === '' ? null : answer.text,
            ...(answer.toolCalls.length === 0
              ? {}
              : {
                  tool_calls: answer.toolCalls.map((call) => ({
                    id: call.id,
                    type: 'function',
                    function: { name: call.name, arguments: JSON.stringify(call.arguments) },
                  })),
                }),
          },
          finish_reason: finishReason(answer),
        },
      ],
      usage: {
        prompt_tokens: answer.usage.inputTokens,
        completion_tokens: answer.usage.outputTokens,
        total_tokens: answer.usage.inputTokens + answer.usage.outputTokens,
      },
    };
  },

  streamChat(answer, model, id, includeUsage) {
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: unknown, finish: string | null = null): string =>
      sse({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finish }],
      });
    const frames: MockFrame[] = [{ text: chunk({ role: 'assistant', content: '' }) }];
    for (const piece of splitForStream(answer.text))
      frames.push({ text: chunk({ content: piece }) });
    answer.toolCalls.forEach((call, index) => {
      frames.push({
        text: chunk({
          tool_calls: [
            { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } },
          ],
        }),
      });
      for (const piece of splitForStream(JSON.stringify(call.arguments), 12)) {
        frames.push({
          text: chunk({ tool_calls: [{ index, function: { arguments: piece } }] }),
          insideToolCall: true,
        });
      }
    });
    frames.push({ text: chunk({}, finishReason(answer)) });
    if (includeUsage) {
      frames.push({
        text: sse({
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [],
          usage: {
            prompt_tokens: answer.usage.inputTokens,
            completion_tokens: answer.usage.outputTokens,
            total_tokens: answer.usage.inputTokens + answer.usage.outputTokens,
          },
        }),
      });
    }
    frames.push({ text: 'data: [DONE]\n\n' });
    return frames;
  },

  errorBody(status, message) {
    const type =
      status === 429
        ? 'rate_limit_exceeded'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error';
    return { error: { message, type, code: type } };
  },

  malformedFrame() {
    return 'data: {"id":"broken","choices":[{"delta":{"content":"tru\n\n';
  },
};
