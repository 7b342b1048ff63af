/**
 * The failure half of the model provider contract: every adapter turns the mock LLM server's
 * faults into the same typed, retry-aware KeelErrors. Registered by
 * {@link describeModelProviderContract} in `model-provider.contract.ts`, which also uses the
 * helpers exported here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { rejectsWithCode } from '../../../../test/support/assertions.ts';
import type { ErrorCode } from '../../../platform/errors/error-catalogue.ts';
import type { KeelError } from '../../../platform/errors/keel-error.ts';
import { MockLlmServer, type MockLlmServerOptions } from '../mock/mock-llm-server.ts';
import { type MockScript, parseMockScript } from '../mock/mock-script.ts';
import type { ChatDelta, ChatRequest, ChatResponse, ModelProviderV1 } from './model-provider.ts';

/** The limits a contract test gives the adapter it creates. */
export interface ProviderContractLimits {
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
}

/** Creates the adapter under test, pointed at `mock`. */
export type ProviderContractFactory = (
  mock: MockLlmServer,
  options: ProviderContractLimits,
) => ModelProviderV1;

export const CONTRACT_MODEL = 'mock-small';

const DEFAULT_LIMITS: ProviderContractLimits = { timeoutMs: 10_000, maxResponseBytes: 1_048_576 };

export type CallMode = 'chat' | 'stream';
export const CALL_MODES: readonly CallMode[] = ['chat', 'stream'];

/** A one-message chat request to the contract model. */
export function ask(
  text: string,
  extra: Omit<ChatRequest, 'model' | 'messages'> = {},
): ChatRequest {
  return { model: CONTRACT_MODEL, messages: [{ role: 'user', content: text }], ...extra };
}

/** A script of one conversation from plain turns. */
export function script(turns: unknown[]): MockScript {
  return parseMockScript({ turns });
}

/**
 * Starts a mock server, creates the adapter against it, runs `body` and closes the server
 * whatever happened.
 */
export async function withProvider(
  create: ProviderContractFactory,
  setup: {
    readonly mock?: MockLlmServerOptions;
    readonly limits?: Partial<ProviderContractLimits>;
  },
  body: (provider: ModelProviderV1, mock: MockLlmServer) => Promise<void>,
): Promise<void> {
  const mock = await MockLlmServer.start(setup.mock ?? {});
  try {
    await body(create(mock, { ...DEFAULT_LIMITS, ...setup.limits }), mock);
  } finally {
    await mock.close();
  }
}

/** Every delta of a stream, in order. */
export async function collect(stream: AsyncIterable<ChatDelta>): Promise<ChatDelta[]> {
  const deltas: ChatDelta[] = [];
  for await (const delta of stream) deltas.push(delta);
  return deltas;
}

/** Calls the adapter whole or streaming; a stream is read to its end. */
export async function callIn(
  mode: CallMode,
  provider: ModelProviderV1,
  request: ChatRequest,
  signal: AbortSignal = new AbortController().signal,
): Promise<ChatResponse | ChatDelta[]> {
  return mode === 'chat'
    ? provider.doChat(request, { signal })
    : collect(provider.doStream(request, { signal }));
}

/** Asserts that `promise` rejects with a KeelError of `code`; returns it. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<KeelError> {
  return (await rejectsWithCode(promise, code)) as unknown as KeelError;
}

/** Resolves once the mock has received `count` requests (it records them as they arrive). */
export async function receivedRequests(mock: MockLlmServer, count: number): Promise<void> {
  while (mock.requests().length < count) await delay(5);
}

const TOOL_REPLY = {
  text: 'Reading the file first.',
  toolCalls: [
    {
      id: 'call_read',
      name: 'read_file',
      arguments: { path: 'src/services/models/a-long-name.ts' },
    },
  ],
};

const STATUS_FAULTS = [
  { type: 'server-error', status: 500 },
  { type: 'unavailable', status: 503 },
  { type: 'overloaded', status: 529 },
] as const;

/** Registers the failure cases of the contract (call it inside the contract's `describe`). */
export function describeModelProviderFailureContract(create: ProviderContractFactory): void {
  describe('failures', () => {
    for (const mode of CALL_MODES) {
      it(`surfaces a 429 as KEEL_PROVIDER_RATE_LIMITED with the Retry-After wait (${mode})`, async () => {
        await withProvider(create, {}, async (provider, mock) => {
          mock.injectFault({ fault: { type: 'rate-limit', retryAfterSeconds: 7 } });
          const error = await rejectsWith(
            callIn(mode, provider, ask('hi')),
            'KEEL_PROVIDER_RATE_LIMITED',
          );
          assert.equal(error.retryAfterMs, 7_000);
          assert.equal(error.retryable, true);
          assert.equal(error.details.status, 429);
          assert.equal(mock.requests()[0]?.fault, 'rate-limit');
        });
      });

      for (const { type, status } of STATUS_FAULTS) {
        it(`surfaces a ${status} as a retryable KEEL_PROVIDER_UNAVAILABLE (${mode})`, async () => {
          await withProvider(create, {}, async (provider, mock) => {
            mock.injectFault({ fault: { type } });
            const error = await rejectsWith(
              callIn(mode, provider, ask('hi')),
              'KEEL_PROVIDER_UNAVAILABLE',
            );
            assert.equal(error.retryable, true);
            assert.equal(error.details.status, status);
          });
        });
      }

      it(`surfaces a connection reset as KEEL_PROVIDER_UNAVAILABLE (${mode})`, async () => {
        await withProvider(create, {}, async (provider, mock) => {
          mock.injectFault({ fault: { type: 'reset' } });
          const error = await rejectsWith(
            callIn(mode, provider, ask('hi')),
            'KEEL_PROVIDER_UNAVAILABLE',
          );
          assert.equal(error.retryable, true);
          assert.equal(mock.requests()[0]?.fault, 'reset');
        });
      });

      it(`gives up with KEEL_TIMEOUT when the provider never answers (${mode})`, async () => {
        await withProvider(create, { limits: { timeoutMs: 150 } }, async (provider, mock) => {
          mock.injectFault({ fault: { type: 'timeout' } });
          const error = await rejectsWith(callIn(mode, provider, ask('hi')), 'KEEL_TIMEOUT');
          assert.equal(error.retryable, true);
        });
      });

      it(`refuses an answer over maxResponseBytes with KEEL_PROVIDER_RESPONSE_TOO_LARGE (${mode})`, async () => {
        const long = { text: 'word '.repeat(400) };
        await withProvider(
          create,
          { mock: { script: script([{ reply: long }]) }, limits: { maxResponseBytes: 64 } },
          async (provider) => {
            await rejectsWith(
              callIn(mode, provider, ask('hi')),
              'KEEL_PROVIDER_RESPONSE_TOO_LARGE',
            );
          },
        );
      });

      it(`surfaces a 400 from the provider as KEEL_PROVIDER_REJECTED, not retryable (${mode})`, async () => {
        const turns = [{ expect: { role: 'user', contains: 'banana' }, reply: { text: 'yes' } }];
        await withProvider(create, { mock: { script: script(turns) } }, async (provider, mock) => {
          const error = await rejectsWith(
            callIn(mode, provider, ask('an apple, please')),
            'KEEL_PROVIDER_REJECTED',
          );
          assert.equal(error.retryable, false);
          assert.equal(error.details.status, 400);
          assert.equal(mock.requests()[0]?.status, 400);
        });
      });
    }

    it('surfaces a whole body that is not JSON as KEEL_PROVIDER_PROTOCOL', async () => {
      await withProvider(create, {}, async (provider, mock) => {
        mock.injectFault({ fault: { type: 'malformed-json' } });
        await rejectsWith(callIn('chat', provider, ask('hi')), 'KEEL_PROVIDER_PROTOCOL');
      });
    });

    it('surfaces a stream frame that is not JSON as KEEL_PROVIDER_PROTOCOL', async () => {
      await withProvider(create, {}, async (provider, mock) => {
        mock.injectFault({ fault: { type: 'malformed-json' } });
        await rejectsWith(
          callIn('stream', provider, ask('a question long enough for several frames')),
          'KEEL_PROVIDER_PROTOCOL',
        );
      });
    });

    it('surfaces a stream cut inside a tool call as KEEL_PROVIDER_STREAM_INTERRUPTED after the text', async () => {
      const turns = [{ fault: { type: 'cut-mid-tool-call' }, reply: TOOL_REPLY }];
      await withProvider(create, { mock: { script: script(turns) } }, async (provider) => {
        const seen: ChatDelta[] = [];
        const reading = (async () => {
          for await (const delta of provider.doStream(ask('read it'), {
            signal: new AbortController().signal,
          })) {
            seen.push(delta);
          }
        })();
        await rejectsWith(reading, 'KEEL_PROVIDER_STREAM_INTERRUPTED');
        const text = seen.flatMap((delta) => (delta.type === 'text' ? [delta.text] : [])).join('');
        assert.equal(text, TOOL_REPLY.text);
        assert.equal(
          seen.some((delta) => delta.type === 'tool-call' || delta.type === 'finish'),
          false,
        );
      });
    });

    it('surfaces a whole body cut inside a tool call as a retryable error', async () => {
      const turns = [{ fault: { type: 'cut-mid-tool-call' }, reply: TOOL_REPLY }];
      await withProvider(create, { mock: { script: script(turns) } }, async (provider) => {
        await assert.rejects(
          provider.doChat(ask('read it'), { signal: AbortSignal.timeout(10_000) }),
          (error: unknown) => {
            assert.equal((error as { retryable?: unknown }).retryable, true, String(error));
            assert.match(String((error as { code?: unknown }).code), /^KEEL_PROVIDER_/);
            return true;
          },
        );
      });
    });

    it('surfaces the caller aborting a call that waits for its answer as KEEL_ABORTED', async () => {
      await withProvider(create, {}, async (provider, mock) => {
        mock.injectFault({ fault: { type: 'timeout' } });
        const controller = new AbortController();
        const pending = provider.doChat(ask('hi'), { signal: controller.signal });
        await receivedRequests(mock, 1);
        controller.abort();
        const error = await rejectsWith(pending, 'KEEL_ABORTED');
        assert.equal(error.retryable, false);
      });
    });

    it('surfaces the caller aborting in the middle of a stream as KEEL_ABORTED', async () => {
      await withProvider(create, {}, async (provider, mock) => {
        mock.injectFault({ fault: { type: 'slow-stream', delayMs: 25 } });
        const controller = new AbortController();
        const request = ask('a question long enough to be streamed in several pieces');
        const reading = (async () => {
          for await (const delta of provider.doStream(request, { signal: controller.signal })) {
            if (delta.type === 'text') controller.abort();
          }
        })();
        const error = await rejectsWith(reading, 'KEEL_ABORTED');
        assert.equal(error.retryable, false);
      });
    });
  });
}
