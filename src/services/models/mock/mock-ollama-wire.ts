import type { MockAnswer } from './mock-conversation.ts';
import {
  type MockFrame,
  type MockParsedChat,
  type MockWireFormat,
  readFunctionToolsChat,
  splitForStream,
} from './mock-wire-format.ts';

function line(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

function doneReason(answer: MockAnswer): string {
  return answer.finishReason === 'length' ? 'length' : 'stop';
}

/** Ollama's native `/api/chat` wire format of the mock server (NDJSON when streaming). */
export const mockOllamaWire: MockWireFormat = {
  name: 'ollama',
  streamContentType: 'application/x-ndjson',

  parseChat(body: unknown): MockParsedChat {
    const read = readFunctionToolsChat(body, 'a chat request');
    if ('message' in read) return { ok: false, message: read.message };
    return {
      ok: true,
      request: read.request,
      // Ollama streams unless told not to.
      stream: read.record.stream !== false,
      includeUsage: true,
    };
  },

  renderChat(answer, model) {
    return {
      model,
      created_at: new Date().toISOString(),
      message: {
        role: 'assistant',
        content: answer.text,
        ...(answer.toolCalls.length === 0
          ? {}
          : {
              tool_calls: answer.toolCalls.map((call) => ({
                function: { name: call.name, arguments: call.arguments },
              })),
            }),
      },
      done: true,
      done_reason: doneReason(answer),
      total_duration: 1_000_000,
      prompt_eval_count: answer.usage.inputTokens,
      eval_count: answer.usage.outputTokens,
    };
  },

  streamChat(answer, model) {
    const createdAt = new Date().toISOString();
    const frames: MockFrame[] = splitForStream(answer.text).map((piece) => ({
      text: line({
        model,
        created_at: createdAt,
        message: { role: 'assistant', content: piece },
        done: false,
      }),
    }));
    if (answer.toolCalls.length > 0) {
      const whole = line({
        model,
        created_at: createdAt,
        message: {
          role: 'assistant',
          content: '',
          tool_calls: answer.toolCalls.map((call) => ({
            function: { name: call.name, arguments: call.arguments },
          })),
        },
        done: false,
      });
      // Ollama sends a tool call whole; a cut inside it leaves half a JSON line.
      const half = Math.floor(whole.length / 2);
      frames.push(
        { text: whole.slice(0, half), insideToolCall: true },
        { text: whole.slice(half) },
      );
    }
    frames.push({
      text: line({
        model,
        created_at: createdAt,
        message: { role: 'assistant', content: '' },
        done: true,
        done_reason: doneReason(answer),
        total_duration: 1_000_000,
        prompt_eval_count: answer.usage.inputTokens,
        eval_count: answer.usage.outputTokens,
      }),
    });
    return frames;
  },

  errorBody(_status, message) {
    return { error: message };
  },

  malformedFrame() {
    return '{"model":"broken","message":{"content":"tru\n';
  },
};
