import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countMockTokens } from '../mock/mock-conversation.ts';
import { MockLlmServer } from '../mock/mock-llm-server.ts';
import { parseMockScript } from '../mock/mock-script.ts';
import { describeModelProviderContract } from '../provider/model-provider.contract.ts';
import type { ChatMessage } from '../provider/model-provider.ts';
import { AnthropicProvider } from './anthropic-provider.ts';

describeModelProviderContract(
  'anthropic',
  (mock, limits) =>
    new AnthropicProvider({ providerId: 'mock-anthropic', baseUrl: mock.url, ...limits }),
  {
    // Anthropic answers a JSON schema through a forced tool; the adapter returns its input.
    jsonSchemaReply: (answer) => ({
      toolCalls: [{ name: 'structured_output', arguments: answer }],
    }),
  },
);

const SIGNAL = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(20_000) });

async function withAnthropic(
  turns: unknown[],
  body: (provider: AnthropicProvider, mock: MockLlmServer) => Promise<void>,
): Promise<void> {
  const mock = await MockLlmServer.start({ script: parseMockScript({ turns }) });
  try {
    await body(
      new AnthropicProvider({
        providerId: 'mock-anthropic',
        baseUrl: mock.url,
        timeoutMs: 10_000,
        maxResponseBytes: 1_048_576,
      }),
      mock,
    );
  } finally {
    await mock.close();
  }
}

describe('anthropic provider', () => {
  it('sends consecutive tool results as one user turn', async () => {
    const turns = [
      {
        reply: {
          toolCalls: [
            { id: 'toolu_a', name: 'read_file', arguments: { path: 'a.ts' } },
            { id: 'toolu_b', name: 'read_file', arguments: { path: 'b.ts' } },
          ],
        },
      },
      // The mock reads a user turn made only of tool results as one tool message; had the
      // results gone in two turns, the latest would hold only the second one.
      { expect: { role: 'tool', contains: 'alpha-result;beta-result' }, reply: { text: 'done' } },
    ];
    await withAnthropic(turns, async (provider) => {
      const question: ChatMessage = { role: 'user', content: 'read both files' };
      const first = await provider.doChat({ model: 'mock-small', messages: [question] }, SIGNAL());
      assert.deepEqual(
        first.toolCalls.map((call) => call.id),
        ['toolu_a', 'toolu_b'],
      );
      const second = await provider.doChat(
        {
          model: 'mock-small',
          messages: [
            question,
            { role: 'assistant', content: '', toolCalls: first.toolCalls },
            { role: 'tool', toolCallId: 'toolu_a', content: 'alpha-result;' },
            { role: 'tool', toolCallId: 'toolu_b', content: 'beta-result' },
          ],
        },
        SIGNAL(),
      );
      assert.equal(second.text, 'done');
    });
  });

  it('moves system messages, wherever they stand, into system', async () => {
    // A system message left among the messages would be the latest one, so the mock's
    // expectation of a user message fails; the usage proves the mock saw the joined system.
    const turns = [{ expect: { role: 'user', contains: 'two plus two' }, reply: { text: '4' } }];
    await withAnthropic(turns, async (provider) => {
      const response = await provider.doChat(
        {
          model: 'mock-small',
          messages: [
            { role: 'system', content: 'You are terse.' },
            { role: 'user', content: 'What is two plus two?' },
            { role: 'system', content: 'Answer in digits.' },
          ],
        },
        SIGNAL(),
      );
      assert.equal(response.text, '4');
      assert.equal(
        response.usage?.inputTokens,
        3 +
          (4 + countMockTokens('You are terse.\n\nAnswer in digits.')) +
          (4 + countMockTokens('What is two plus two?')),
      );
    });
  });

  it('reports no embeddings capability', () => {
    const provider = new AnthropicProvider({
      providerId: 'anthropic',
      timeoutMs: 1_000,
      maxResponseBytes: 1_024,
    });
    assert.equal(provider.capabilities.embeddings, false);
    assert.equal(provider.kind, 'anthropic');
  });
});
