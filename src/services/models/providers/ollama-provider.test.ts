import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { throwsWithCode } from '../../../../test/support/assertions.ts';
import { MockLlmServer } from '../mock/mock-llm-server.ts';
import { parseMockScript } from '../mock/mock-script.ts';
import { describeModelProviderContract } from '../provider/model-provider.contract.ts';
import { OllamaProvider } from './ollama-provider.ts';

const LIMITS = { timeoutMs: 10_000, maxResponseBytes: 1_048_576 };

describeModelProviderContract(
  'ollama',
  (mock, limits) => new OllamaProvider({ providerId: 'mock-ollama', baseUrl: mock.url, ...limits }),
);

const SIGNAL = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(20_000) });

describe('ollama provider', () => {
  it('streams NDJSON when a request does not say stream:false', async () => {
    const mock = await MockLlmServer.start();
    try {
      const response = await fetch(`${mock.url}/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'mock-small',
          messages: [{ role: 'user', content: 'a question long enough to stream in pieces' }],
        }),
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/x-ndjson');
      const lines = (await response.text()).split('\n').filter((line) => line !== '');
      assert.ok(lines.length > 2);
      const values = lines.map((line) => JSON.parse(line) as { done: boolean });
      assert.deepEqual(
        values.map((value) => value.done),
        [...Array.from({ length: values.length - 1 }, () => false), true],
      );
    } finally {
      await mock.close();
    }
  });

  it('asks for a whole answer with stream:false and for NDJSON when streaming', async () => {
    const mock = await MockLlmServer.start();
    try {
      const provider = new OllamaProvider({ providerId: 'local', baseUrl: mock.url, ...LIMITS });
      const request = { model: 'qwen3', messages: [{ role: 'user' as const, content: 'hi' }] };
      const whole = await provider.doChat(request, SIGNAL());
      assert.equal(whole.text, 'mock reply to: hi');
      for await (const delta of provider.doStream(request, SIGNAL())) assert.ok(delta.type);
      assert.deepEqual(
        mock.requests().map((record) => [record.format, record.stream, record.status]),
        [
          ['ollama', false, 200],
          ['ollama', true, 200],
        ],
      );
    } finally {
      await mock.close();
    }
  });

  it('numbers tool calls, which Ollama sends without ids, across a streamed answer', async () => {
    const turns = [
      {
        reply: {
          toolCalls: [
            { name: 'read_file', arguments: { path: 'a.ts' } },
            { name: 'list_dir', arguments: { path: '.' } },
          ],
        },
      },
    ];
    const mock = await MockLlmServer.start({ script: parseMockScript({ turns }) });
    try {
      const provider = new OllamaProvider({ providerId: 'local', baseUrl: mock.url, ...LIMITS });
      const calls = [];
      for await (const delta of provider.doStream(
        { model: 'qwen3', messages: [{ role: 'user', content: 'look around' }] },
        SIGNAL(),
      )) {
        if (delta.type === 'tool-call') calls.push(delta.call);
      }
      assert.deepEqual(calls, [
        { id: 'call_0', name: 'read_file', arguments: { path: 'a.ts' } },
        { id: 'call_1', name: 'list_dir', arguments: { path: '.' } },
      ]);
    } finally {
      await mock.close();
    }
  });

  it('defaults to the local Ollama port and refuses plain http across the network', () => {
    const local = new OllamaProvider({ providerId: 'local', ...LIMITS });
    assert.equal(local.kind, 'ollama');
    throwsWithCode(
      () =>
        new OllamaProvider({ providerId: 'lan', baseUrl: 'http://192.168.1.20:11434', ...LIMITS }),
      'KEEL_TLS_REQUIRED',
    );
  });
});
