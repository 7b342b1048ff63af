/**
 * The shared contract of the model provider spec (`ModelProviderV1`). Every adapter runs this
 * same suite against the real mock LLM server on a loopback port (see
 * `providers/openai-compatible-provider.test.ts`); a new adapter must pass it unchanged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import { countMockTokens } from '../mock/mock-conversation.ts';
import { MockLlmServer } from '../mock/mock-llm-server.ts';
import type { ChatDelta, ChatMessage, ChatResponse, ModelProviderV1 } from './model-provider.ts';
import {
  ask,
  CALL_MODES,
  type CallMode,
  CONTRACT_MODEL,
  collect,
  describeModelProviderFailureContract,
  type ProviderContractFactory,
  type ProviderContractLimits,
  rejectsWith,
  script,
  withProvider,
} from './model-provider-failures.contract.ts';

export type { ProviderContractFactory, ProviderContractLimits };

/** How an adapter differs where the spec leaves it room. */
export interface ProviderContractHooks {
  /**
   * The scripted mock reply that carries a JSON-schema answer. By default the answer is the
   * reply text; an adapter that forces a tool for it (Anthropic) scripts that tool call.
   */
  readonly jsonSchemaReply?: (answer: JsonObject) => Record<string, unknown>;
}

const SIGNAL_OPTIONS = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(20_000) });

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'The forecast for a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city'],
  },
} as const;

const WEATHER_ARGUMENTS = { city: 'Oslo', days: 2, units: { temperature: 'celsius' } };

const WEATHER_TURNS = [
  {
    expect: { role: 'user', contains: 'weather' },
    reply: {
      text: 'Let me look that up.',
      toolCalls: [{ id: 'call_weather', name: 'get_weather', arguments: WEATHER_ARGUMENTS }],
    },
  },
  { expect: { role: 'tool', contains: 'sunny-42' }, reply: { text: 'It will be sunny.' } },
];

const PERSON_ANSWER: JsonObject = { name: 'Ada', languages: ['en', 'fr'], age: 36 };

/** Text deltas of a stream, joined. */
function textOf(deltas: readonly ChatDelta[]): string {
  return deltas.flatMap((delta) => (delta.type === 'text' ? [delta.text] : [])).join('');
}

/** The finish delta of a stream, asserting that it is the last delta and the only finish. */
function finishOf(deltas: readonly ChatDelta[]): Extract<ChatDelta, { type: 'finish' }> {
  const finishes = deltas.filter((delta) => delta.type === 'finish');
  assert.equal(finishes.length, 1, 'a stream ends with exactly one finish');
  const last = deltas.at(-1);
  assert.equal(last?.type, 'finish', 'finish is the last delta');
  return last as Extract<ChatDelta, { type: 'finish' }>;
}

/** Reads a chat answer whole or from a stream into the shape of a ChatResponse. */
async function answer(
  mode: CallMode,
  provider: ModelProviderV1,
  request: Parameters<ModelProviderV1['doChat']>[0],
): Promise<ChatResponse> {
  if (mode === 'chat') return provider.doChat(request, SIGNAL_OPTIONS());
  const deltas = await collect(provider.doStream(request, SIGNAL_OPTIONS()));
  const finish = finishOf(deltas);
  const calls = deltas.flatMap((delta) => (delta.type === 'tool-call' ? [delta] : []));
  for (const { index, call } of calls) {
    const start = deltas.find((delta) => delta.type === 'tool-call-start' && delta.index === index);
    assert.deepEqual(start, { type: 'tool-call-start', index, id: call.id, name: call.name });
    const argumentText = deltas
      .flatMap((delta) =>
        delta.type === 'tool-call-arguments' && delta.index === index ? [delta.text] : [],
      )
      .join('');
    assert.deepEqual(JSON.parse(argumentText), call.arguments, 'argument deltas add up');
    assert.ok(
      deltas.indexOf(start as ChatDelta) < deltas.findIndex((delta) => delta.type === 'tool-call'),
    );
  }
  return {
    text: textOf(deltas),
    toolCalls: calls.map((delta) => delta.call),
    finishReason: finish.finishReason,
    usage: finish.usage,
    model: finish.model,
  };
}

/**
 * Registers the contract suite of the provider spec for one adapter.
 *
 * @example
 * ```ts
 * describeModelProviderContract('ollama', (mock, limits) =>
 *   new OllamaProvider({ providerId: 'mock-ollama', baseUrl: mock.url, ...limits }),
 * );
 * ```
 */
export function describeModelProviderContract(
  name: string,
  create: ProviderContractFactory,
  hooks: ProviderContractHooks = {},
): void {
  const jsonSchemaReply =
    hooks.jsonSchemaReply ?? ((value: JsonObject) => ({ text: JSON.stringify(value) }));

  describe(`${name} contract`, () => {
    it('returns the scripted text and usage of a whole answer', async () => {
      const reply = { text: 'Hello from the script.', usage: { inputTokens: 12, outputTokens: 7 } };
      const turns = [{ reply }];
      await withProvider(create, { mock: { script: script(turns) } }, async (provider) => {
        const response = await provider.doChat(ask('hello'), SIGNAL_OPTIONS());
        assert.equal(response.text, reply.text);
        assert.deepEqual(response.usage, reply.usage);
        assert.deepEqual(response.toolCalls, []);
        assert.equal(response.finishReason, 'stop');
        assert.equal(response.model, CONTRACT_MODEL);
      });
    });

    it('reports the usage the provider computed when the script fixes none', async () => {
      await withProvider(create, {}, async (provider) => {
        const response = await provider.doChat(ask('Say hello'), SIGNAL_OPTIONS());
        assert.equal(response.text, 'mock reply to: Say hello');
        assert.deepEqual(response.usage, {
          inputTokens: 3 + 4 + countMockTokens('Say hello'),
          outputTokens: countMockTokens(response.text),
        });
      });
    });

    it('streams text deltas that add up to the answer and end with one finish carrying usage', async () => {
      const reply = {
        text: 'A streamed answer that is long enough to arrive in several pieces.',
        usage: { inputTokens: 21, outputTokens: 13 },
      };
      await withProvider(create, { mock: { script: script([{ reply }]) } }, async (provider) => {
        const deltas = await collect(provider.doStream(ask('stream it'), SIGNAL_OPTIONS()));
        assert.ok(deltas.filter((delta) => delta.type === 'text').length > 1);
        assert.equal(textOf(deltas), reply.text);
        const finish = finishOf(deltas);
        assert.deepEqual(finish.usage, reply.usage);
        assert.equal(finish.finishReason, 'stop');
        assert.equal(finish.model, CONTRACT_MODEL);
      });
    });

    for (const mode of CALL_MODES) {
      it(`reports an answer cut by the output limit as finishReason length (${mode})`, async () => {
        const turns = [{ reply: { text: 'Cut short', finishReason: 'length' } }];
        await withProvider(create, { mock: { script: script(turns) } }, async (provider) => {
          const response = await answer(mode, provider, ask('talk'));
          assert.equal(response.text, 'Cut short');
          assert.equal(response.finishReason, 'length');
        });
      });

      it(`returns a scripted tool call with parsed arguments and sends its result back (${mode})`, async () => {
        await withProvider(
          create,
          { mock: { script: script(WEATHER_TURNS) } },
          async (provider, mock) => {
            const question = ask('What will the weather be in Oslo?', { tools: [WEATHER_TOOL] });
            const first = await answer(mode, provider, question);
            assert.equal(first.text, 'Let me look that up.');
            assert.equal(first.finishReason, 'tool-calls');
            assert.equal(first.toolCalls.length, 1);
            const call = first.toolCalls[0];
            assert.ok(call !== undefined);
            assert.equal(call.name, 'get_weather');
            assert.deepEqual(call.arguments, WEATHER_ARGUMENTS);
            assert.ok(call.id.length > 0);

            const messages: ChatMessage[] = [
              ...question.messages,
              { role: 'assistant', content: first.text, toolCalls: first.toolCalls },
              {
                role: 'tool',
                toolCallId: call.id,
                name: call.name,
                content: '{"forecast":"sunny-42"}',
              },
            ];
            // The mock answers 400 unless the tool result arrives as the tool's answer.
            const second = await answer(mode, provider, { ...question, messages });
            assert.equal(second.text, 'It will be sunny.');
            assert.equal(second.finishReason, 'stop');
            assert.deepEqual(
              mock.requests().map((record) => record.status),
              [200, 200],
            );
          },
        );
      });

      it(`answers a JSON-schema request with the JSON text (${mode})`, async () => {
        const turns = [{ reply: jsonSchemaReply(PERSON_ANSWER) }];
        await withProvider(create, { mock: { script: script(turns) } }, async (provider) => {
          const response = await answer(
            mode,
            provider,
            ask('Describe Ada as JSON', {
              responseFormat: {
                type: 'json-schema',
                name: 'person',
                schema: {
                  type: 'object',
                  properties: { name: { type: 'string' }, age: { type: 'integer' } },
                },
              },
            }),
          );
          assert.deepEqual(JSON.parse(response.text), PERSON_ANSWER);
          assert.deepEqual(response.toolCalls, []);
          assert.equal(response.finishReason, 'stop');
        });
      });
    }

    it('returns one embedding per input, or rejects when the provider has none', async () => {
      await withProvider(create, {}, async (provider) => {
        const request = { model: 'mock-embed', inputs: ['first text', 'second text', 'third'] };
        if (!provider.capabilities.embeddings) {
          await rejectsWith(provider.doEmbed(request, SIGNAL_OPTIONS()), 'KEEL_PROVIDER_REJECTED');
          return;
        }
        const response = await provider.doEmbed(request, SIGNAL_OPTIONS());
        assert.equal(response.embeddings.length, 3);
        const [first, second] = response.embeddings;
        assert.ok(first !== undefined && second !== undefined && first.length > 0);
        assert.equal(second.length, first.length);
        assert.notDeepEqual(first, second);
        assert.equal(response.model, 'mock-embed');
      });
    });

    it('passes a health check against a live endpoint', async () => {
      await withProvider(create, {}, async (provider) => {
        await provider.doHealthCheck(SIGNAL_OPTIONS());
      });
    });

    it('fails a health check against a closed port with KEEL_PROVIDER_UNAVAILABLE', async () => {
      const mock = await MockLlmServer.start();
      const provider = create(mock, { timeoutMs: 10_000, maxResponseBytes: 1_048_576 });
      await mock.close();
      const error = await rejectsWith(
        provider.doHealthCheck(SIGNAL_OPTIONS()),
        'KEEL_PROVIDER_UNAVAILABLE',
      );
      assert.equal(error.retryable, true);
    });

    describeModelProviderFailureContract(create);
  });
}
