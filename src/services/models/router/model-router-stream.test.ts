import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { chatOf, startRouterRig } from '../../../../test/support/model-router-rig.ts';
import { silentLogger } from '../../../../test/support/silent-logger.ts';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { MockLlmServer } from '../mock/mock-llm-server.ts';
import { parseMockScript } from '../mock/mock-script.ts';
import type { RoutedDelta } from './model-router.ts';

const logger = silentLogger();
const open = () => ({ signal: new AbortController().signal });

/** Everything a stream yields, and the error that ended it, if any. */
async function drain(
  stream: AsyncIterable<RoutedDelta>,
): Promise<{ deltas: RoutedDelta[]; error: unknown }> {
  const deltas: RoutedDelta[] = [];
  try {
    for await (const delta of stream) deltas.push(delta);
  } catch (error) {
    return { deltas, error };
  }
  return { deltas, error: undefined };
}

function textOf(deltas: readonly RoutedDelta[]): string {
  return deltas.map((delta) => (delta.type === 'text' ? delta.text : '')).join('');
}

describe('ModelRouter.stream', () => {
  it('yields a route delta naming the serving target first, then the provider deltas', async (t) => {
    const rig = await startRouterRig({ logger });
    t.after(() => rig.close());

    const { deltas, error } = await drain(rig.router.stream('smart', chatOf('hello'), open()));

    assert.equal(error, undefined);
    assert.deepEqual(deltas[0], {
      type: 'route',
      target: { provider: 'alpha', model: 'mock-small' },
      attempts: [{ provider: 'alpha', model: 'mock-small', outcome: 'ok' }],
    });
    assert.equal(textOf(deltas), 'mock reply to: hello');
    assert.equal(deltas.filter((delta) => delta.type === 'route').length, 1);
    const last = deltas.at(-1);
    assert.equal(last?.type, 'finish');
    assert.equal(last.type === 'finish' && last.finishReason, 'stop');
    assert.equal(rig.router.breakers().get('alpha')?.snapshot().consecutiveFailures, 0);
  });

  it('fails over when the first provider answers 503 before its first delta', async (t) => {
    const rig = await startRouterRig({ logger });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'unavailable' } });

    const { deltas, error } = await drain(rig.router.stream('smart', chatOf('hello'), open()));

    assert.equal(error, undefined);
    assert.deepEqual(deltas[0], {
      type: 'route',
      target: { provider: 'beta', model: 'mock-small' },
      attempts: [
        { provider: 'alpha', model: 'mock-small', outcome: 'KEEL_PROVIDER_UNAVAILABLE' },
        { provider: 'beta', model: 'mock-small', outcome: 'ok' },
      ],
    });
    assert.equal(textOf(deltas), 'mock reply to: hello');
  });

  it('surfaces a stream cut after its first deltas as interrupted, without failover', async (t) => {
    const rig = await startRouterRig({ logger, retry: { maxAttempts: 2 } });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'cut-mid-tool-call' } });

    const { deltas, error } = await drain(rig.router.stream('smart', chatOf('hello'), open()));

    assert.ok(isKeelError(error), String(error));
    assert.equal(error.code, 'KEEL_PROVIDER_STREAM_INTERRUPTED');
    assert.equal(deltas[0]?.type, 'route');
    assert.equal(textOf(deltas), 'mock reply to: hello');
    assert.equal(rig.mock('alpha').requests().length, 1);
    assert.equal(rig.mock('beta').requests().length, 0);
    assert.equal(rig.router.breakers().get('alpha')?.snapshot().consecutiveFailures, 1);
  });

  it('releases the circuit permit when the consumer stops early', async (t) => {
    const rig = await startRouterRig({
      logger,
      providers: [{ id: 'alpha', kind: 'openai-compatible' }],
      breaker: { failureThreshold: 1, cooldownMs: 30_000 },
    });
    t.after(() => rig.close());

    for await (const delta of rig.router.stream('smart', chatOf('hello'), open())) {
      if (delta.type === 'text') break;
    }

    // Stopping early says nothing against the provider, so its breaker still admits calls.
    assert.equal(rig.router.breakers().get('alpha')?.state, 'closed');
    const answer = await rig.router.chat('smart', chatOf('again'), open());
    assert.deepEqual(answer.attempts, [{ provider: 'alpha', model: 'mock-small', outcome: 'ok' }]);
  });

  it('leaves nothing running once the consumer stops early', async (t) => {
    // A long reply sent slowly: if the stream were left open, the child would live for minutes.
    const script = parseMockScript({ turns: [{ reply: { text: 'word '.repeat(400) } }] });
    const mock = await MockLlmServer.start({ script });
    t.after(() => mock.close());
    mock.injectFault({ fault: { type: 'slow-stream', delayMs: 300 } });

    const child = spawn(
      process.execPath,
      ['--input-type=module', '--eval', childProgram(mock.openAiBaseUrl)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
    );
    clearTimeout(guard);

    assert.equal(signal, null, `the child had to be killed; it printed: ${output}`);
    assert.equal(code, 0, output);
    assert.match(output, /^stopped after: word/);
  });
});

/** A process that streams from the mock, stops after the first text, and should then exit. */
function childProgram(baseUrl: string): string {
  const module = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  return `
import { silentLogger } from ${module('../../../../test/support/silent-logger.ts')};
import { OpenAiCompatibleProvider } from ${module('../providers/openai-compatible-provider.ts')};
import { ModelRouter } from ${module('./model-router.ts')};
import { systemScheduler } from ${module('./scheduler.ts')};

const provider = new OpenAiCompatibleProvider({
  providerId: 'alpha', baseUrl: ${JSON.stringify(baseUrl)}, timeoutMs: 600000, maxResponseBytes: 1048576,
});
const router = new ModelRouter({
  providers: new Map([['alpha', provider]]),
  aliases: new Map([['smart', [{ provider: 'alpha', model: 'mock-small' }]]]),
  retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0, maxRetryAfterMs: 0 },
  deadlineMs: 600000,
  breaker: { failureThreshold: 5, cooldownMs: 30000 },
  scheduler: systemScheduler,
  logger: silentLogger(),
});
const stream = router.stream('smart', { messages: [{ role: 'user', content: 'hello' }] }, {
  signal: new AbortController().signal,
});
for await (const delta of stream) {
  if (delta.type === 'text') {
    process.stdout.write('stopped after: ' + delta.text.trim() + '\\n');
    break;
  }
}
`;
}
