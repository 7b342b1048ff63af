import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { rejectsWithCode, throwsWithCode } from '../../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { MockLlmServer, type MockLlmServerOptions } from './mock-llm-server.ts';
import { loadMockScript, parseMockScript } from './mock-script.ts';

async function withMock(
  options: MockLlmServerOptions,
  body: (mock: MockLlmServer) => Promise<void>,
): Promise<void> {
  const mock = await MockLlmServer.start(options);
  try {
    await body(mock);
  } finally {
    await mock.close();
  }
}

interface ChatOutcome {
  readonly status: number;
  readonly text: string | undefined;
}

/** One OpenAI-format chat completion; resolves with the status and the answer text. */
async function chat(
  mock: MockLlmServer,
  messages: readonly { role: string; content: string }[],
  model = 'mock-small',
): Promise<ChatOutcome> {
  const response = await fetch(`${mock.openAiBaseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages }),
  });
  const body = (await response.json()) as {
    choices?: { message: { content: string | null } }[];
  };
  return { status: response.status, text: body.choices?.[0]?.message.content ?? undefined };
}

function user(content: string): { role: string; content: string } {
  return { role: 'user', content };
}

describe('mock LLM server', () => {
  describe('scripts', () => {
    it('loads a YAML script and a JSON script from files', async () => {
      await using directory = await temporaryDirectory('keel-mock-script-');
      const yamlPath = join(directory.path, 'script.yaml');
      await writeFile(
        yamlPath,
        [
          'turns:',
          '  - reply:',
          '      text: checking',
          '      toolCalls:',
          '        - name: read_file',
          '          arguments: { path: a.ts }',
          '  - expect: { role: tool, contains: export }',
          '    reply: { text: done }',
          '',
        ].join('\n'),
      );
      const jsonPath = join(directory.path, 'script.json');
      await writeFile(
        jsonPath,
        JSON.stringify({ strict: true, conversations: [{ turns: [{ reply: { text: 'hi' } }] }] }),
      );

      const fromYaml = await loadMockScript(yamlPath);
      assert.equal(fromYaml.strict, false);
      assert.equal(fromYaml.conversations.length, 1);
      const turns = fromYaml.conversations[0]?.turns ?? [];
      assert.deepEqual(turns[0]?.reply.toolCalls, [
        { name: 'read_file', arguments: { path: 'a.ts' } },
      ]);
      assert.deepEqual(turns[1]?.expect, { role: 'tool', contains: 'export' });

      const fromJson = await loadMockScript(jsonPath);
      assert.equal(fromJson.strict, true);
      assert.equal(fromJson.conversations[0]?.turns[0]?.reply.text, 'hi');
    });

    it('refuses a script file that does not parse with KEEL_INVALID_ARGUMENT', async () => {
      await using directory = await temporaryDirectory('keel-mock-script-');
      const path = join(directory.path, 'broken.json');
      await writeFile(path, '{"turns": [');
      await rejectsWithCode(loadMockScript(path), 'KEEL_INVALID_ARGUMENT');
      await rejectsWithCode(loadMockScript(join(directory.path, 'absent.yaml')), 'KEEL_NOT_FOUND');
    });

    it('refuses a script with both turns and conversations with KEEL_INVALID_ARGUMENT', () => {
      const turns = [{ reply: { text: 'a' } }];
      throwsWithCode(
        () => parseMockScript({ turns, conversations: [{ turns }] }),
        'KEEL_INVALID_ARGUMENT',
      );
      throwsWithCode(() => parseMockScript({}), 'KEEL_INVALID_ARGUMENT');
      throwsWithCode(
        () => parseMockScript({ turns: [{ reply: { text: 'a', colour: 'red' } }] }),
        'KEEL_INVALID_ARGUMENT',
      );
    });
  });

  describe('conversations', () => {
    const script = parseMockScript({
      conversations: [
        { name: 'large', match: { model: 'mock-large' }, turns: [{ reply: { text: 'large' } }] },
        { name: 'weather', match: { contains: 'weather' }, turns: [{ reply: { text: 'sunny' } }] },
        {
          name: 'fallback',
          turns: [{ reply: { text: 'first' } }, { reply: { text: 'second' } }],
        },
      ],
    });

    it('selects a conversation by model and by the text of the first user message', async () => {
      await withMock({ script }, async (mock) => {
        assert.equal((await chat(mock, [user('weather?')], 'mock-large')).text, 'large');
        assert.equal((await chat(mock, [user('weather in Oslo?')])).text, 'sunny');
        assert.equal((await chat(mock, [user('hello')])).text, 'first');
        // Only the first user message selects: a later one about the weather does not.
        const later = [user('hello'), { role: 'assistant', content: 'first' }, user('weather?')];
        assert.equal((await chat(mock, later)).text, 'second');
      });
    });

    it('answers 400 to a request no conversation matches in strict mode', async () => {
      const strict = parseMockScript({
        strict: true,
        conversations: [{ match: { model: 'mock-large' }, turns: [{ reply: { text: 'ok' } }] }],
      });
      await withMock({ script: strict }, async (mock) => {
        assert.deepEqual(await chat(mock, [user('hi')], 'mock-small'), {
          status: 400,
          text: undefined,
        });
        assert.deepEqual(await chat(mock, [user('hi')], 'mock-large'), { status: 200, text: 'ok' });
      });
    });

    it('echoes a request no conversation matches when not strict', async () => {
      await withMock({}, async (mock) => {
        assert.deepEqual(await chat(mock, [user('ping')]), {
          status: 200,
          text: 'mock reply to: ping',
        });
      });
    });

    it("fires a turn's scripted fault once and gives the retry the reply", async () => {
      const faulty = parseMockScript({
        turns: [{ fault: { type: 'unavailable' }, reply: { text: 'after the retry' } }],
      });
      await withMock({ script: faulty }, async (mock) => {
        assert.equal((await chat(mock, [user('hi')])).status, 503);
        assert.deepEqual(await chat(mock, [user('hi')]), { status: 200, text: 'after the retry' });
      });
    });
  });

  describe('control over HTTP', () => {
    it('injects a fault into exactly the next requests and clears faults on DELETE', async () => {
      await withMock({}, async (mock) => {
        const inject = async (): Promise<unknown> => {
          const response = await fetch(`${mock.url}/mock/faults`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ fault: { type: 'unavailable' }, times: 2 }),
          });
          assert.equal(response.status, 200);
          return response.json();
        };
        assert.deepEqual(await inject(), { faults: 1 });
        const statuses = [];
        for (let index = 0; index < 3; index += 1) {
          statuses.push((await chat(mock, [user('hi')])).status);
        }
        assert.deepEqual(statuses, [503, 503, 200]);

        await inject();
        const cleared = await fetch(`${mock.url}/mock/faults`, { method: 'DELETE' });
        assert.deepEqual(await cleared.json(), { faults: 0 });
        assert.equal((await chat(mock, [user('hi')])).status, 200);
      });
    });

    it('refuses a fault rule it cannot read with 400', async () => {
      await withMock({}, async (mock) => {
        for (const body of ['{"fault":{"type":"gremlins"}}', '[]', 'null', '{"times":0}']) {
          const response = await fetch(`${mock.url}/mock/faults`, {
            method: 'POST',
            body,
            signal: AbortSignal.timeout(5_000),
          });
          assert.equal(response.status, 400, body);
          await response.body?.cancel();
        }
        assert.equal((await chat(mock, [user('hi')])).status, 200);
      });
    });

    it('lists the requests it received', async () => {
      await withMock({}, async (mock) => {
        mock.injectFault({ fault: { type: 'rate-limit', retryAfterSeconds: 3 } });
        await chat(mock, [user('one')], 'mock-large');
        await chat(mock, [user('two')]);
        const response = await fetch(`${mock.url}/mock/requests`);
        const body = (await response.json()) as { requests: unknown[] };
        const expected = [
          {
            format: 'openai',
            route: 'chat',
            model: 'mock-large',
            stream: false,
            fault: 'rate-limit',
            status: 429,
          },
          {
            format: 'openai',
            route: 'chat',
            model: 'mock-small',
            stream: false,
            fault: null,
            status: 200,
          },
        ];
        assert.deepEqual(body.requests, expected);
        assert.deepEqual(mock.requests(), expected);
      });
    });
  });

  it('breaks a stream of a single frame with a malformed-json fault', async () => {
    // An empty Ollama answer streams as its done line alone.
    const empty = parseMockScript({ turns: [{ reply: { text: '' } }] });
    await withMock({ script: empty }, async (mock) => {
      mock.injectFault({ fault: { type: 'malformed-json' } });
      const response = await fetch(`${mock.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'mock-small', messages: [user('hi')] }),
      });
      const lines = (await response.text()).split('\n').filter((line) => line !== '');
      assert.equal(lines.length, 1);
      assert.throws(() => JSON.parse(lines[0] ?? ''), SyntaxError);
    });
  });

  it('answers 421 to a request whose Host is not a loopback name (DNS rebinding)', async () => {
    await withMock({}, async (mock) => {
      const { request } = await import('node:http');
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const outgoing = request(`${mock.url}/v1/models`, { headers: { host: 'evil.example' } });
        outgoing.on('response', (response) => {
          response.resume();
          resolve(response.statusCode);
        });
        outgoing.on('error', reject);
        outgoing.end();
      });
      assert.equal(status, 421);
      assert.equal((await fetch(`${mock.url}/v1/models`)).status, 200);
    });
  });

  it('answers 413 to a request body over maxRequestBytes', async () => {
    await withMock({ maxRequestBytes: 1_024 }, async (mock) => {
      const outcome = await chat(mock, [user('x'.repeat(4_096))]);
      assert.equal(outcome.status, 413);
      assert.equal((await chat(mock, [user('small')])).status, 200);
    });
  });

  it('cuts a connection held by a timeout fault when it closes', async () => {
    const mock = await MockLlmServer.start();
    mock.injectFault({ fault: { type: 'timeout' } });
    const pending = chat(mock, [user('hi')]);
    while (mock.requests().length === 0) await delay(5);
    await mock.close();
    await assert.rejects(pending, TypeError);
  });
});
