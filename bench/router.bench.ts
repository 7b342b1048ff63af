/**
 * Router overhead: the same OpenAI-compatible client calls a mock LLM server (a separate
 * process, `keel mock-llm`) directly and through the Keel router, interleaved call by call in
 * the same run; the difference of the two latency distributions is the router's cost
 * (alias resolution, circuit breaker, deadline, retry bookkeeping). A second measure drives
 * 200 concurrent streaming calls each way: throughput and time to first token.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type {
  ChatRequest,
  ModelProviderV1,
} from '../src/services/models/provider/model-provider.ts';
import { OpenAiCompatibleProvider } from '../src/services/models/providers/openai-compatible-provider.ts';
import { ModelRouter } from '../src/services/models/router/model-router.ts';
import { systemScheduler } from '../src/services/models/router/scheduler.ts';
import { silentLogger } from '../test/support/silent-logger.ts';
import { type BenchRow, percentile, round, runConcurrently } from './bench-support.ts';

const SEQUENTIAL_PAIRS = 5_000;
const WARMUP = 200;
const STREAM_CONCURRENCY = 200;
const STREAM_CALLS = 2_000;

const request: Omit<ChatRequest, 'model'> = {
  messages: [{ role: 'user', content: 'Summarise the benchmark in one sentence, please.' }],
  maxOutputTokens: 64,
};

async function startMock(): Promise<{ child: ChildProcess; baseUrl: string }> {
  const bin = fileURLToPath(new URL('../bin/keel.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'mock-llm', '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [chunk] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  return {
    child,
    baseUrl: (JSON.parse(chunk.toString('utf8')) as { openAiBaseUrl: string }).openAiBaseUrl,
  };
}

function routerOver(provider: ModelProviderV1): ModelRouter {
  return new ModelRouter({
    providers: new Map([[provider.id, provider]]),
    aliases: new Map([['bench', [{ provider: provider.id, model: 'mock-small' }]]]),
    retry: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 10_000 },
    deadlineMs: 60_000,
    breaker: { failureThreshold: 5, cooldownMs: 30_000 },
    scheduler: systemScheduler,
    logger: silentLogger(),
  });
}

function sorted(values: number[]): number[] {
  return values.sort((left, right) => left - right);
}

/** An answer from memory: the router's own work with no network in the way. */
const instant: ModelProviderV1 = {
  specificationVersion: 'v1',
  id: 'instant',
  kind: 'openai-compatible',
  capabilities: { nativeTools: true, jsonSchema: true, embeddings: false },
  doChat: async (chat) => ({
    text: 'ok',
    toolCalls: [],
    finishReason: 'stop',
    usage: { inputTokens: 1, outputTokens: 1 },
    model: chat.model,
  }),
  doStream: async function* () {
    yield { type: 'finish', finishReason: 'stop', usage: undefined, model: 'm' };
  },
  doEmbed: async () => ({ embeddings: [], usage: undefined, model: 'm' }),
  doHealthCheck: async () => undefined,
};

export async function run(): Promise<BenchRow[]> {
  const { child, baseUrl } = await startMock();
  try {
    const provider = new OpenAiCompatibleProvider({
      providerId: 'mock',
      baseUrl,
      timeoutMs: 60_000,
      maxResponseBytes: 8_388_608,
    });
    const router = routerOver(provider);
    const signal = new AbortController().signal;
    const direct = () => provider.doChat({ ...request, model: 'mock-small' }, { signal });
    const routed = () => router.chat('bench', request, { signal, agentId: 'agt_bench' });

    for (let index = 0; index < WARMUP; index += 1) {
      await direct();
      await routed();
    }
    const directTimes: number[] = [];
    const routedTimes: number[] = [];
    for (let index = 0; index < SEQUENTIAL_PAIRS; index += 1) {
      // Alternate which goes first, so drift of the machine falls on both alike.
      const order = index % 2 === 0 ? [direct, routed] : [routed, direct];
      for (const call of order) {
        const started = performance.now();
        await call();
        (call === direct ? directTimes : routedTimes).push(performance.now() - started);
      }
    }
    sorted(directTimes);
    sorted(routedTimes);
    const d50 = percentile(directTimes, 0.5);
    const d99 = percentile(directTimes, 0.99);
    const r50 = percentile(routedTimes, 0.5);
    const r99 = percentile(routedTimes, 0.99);

    const instantRouter = routerOver(instant);
    const selfTimes: number[] = [];
    const baseTimes: number[] = [];
    for (let index = 0; index < 20_000; index += 1) {
      let started = performance.now();
      await instant.doChat({ ...request, model: 'm' }, { signal });
      baseTimes.push(performance.now() - started);
      started = performance.now();
      await instantRouter.chat('bench', request, { signal });
      selfTimes.push(performance.now() - started);
    }
    sorted(selfTimes);
    sorted(baseTimes);

    const firstToken = async (stream: () => AsyncIterable<{ type: string }>): Promise<number> => {
      const started = performance.now();
      let first = Number.NaN;
      for await (const delta of stream()) {
        if (Number.isNaN(first) && delta.type === 'text') first = performance.now() - started;
      }
      return first;
    };
    const throughput = async (stream: () => AsyncIterable<{ type: string }>) => {
      const { elapsedMs } = await runConcurrently(STREAM_CALLS, STREAM_CONCURRENCY, async () => {
        await firstToken(stream);
      });
      return (STREAM_CALLS / elapsedMs) * 1000;
    };
    const directStream = () => provider.doStream({ ...request, model: 'mock-small' }, { signal });
    const routedStream = () => router.stream('bench', request, { signal, agentId: 'agt_bench' });
    await throughput(directStream);
    await throughput(routedStream);
    // Throughput: each way alone, in the order direct, routed, routed, direct (drift falls on both).
    const directRates = [await throughput(directStream)];
    const routedRates = [await throughput(routedStream), await throughput(routedStream)];
    directRates.push(await throughput(directStream));
    const directPerSecond = directRates.reduce((sum, rate) => sum + rate, 0) / directRates.length;
    const routedPerSecond = routedRates.reduce((sum, rate) => sum + rate, 0) / routedRates.length;
    // Time to first token: both ways in one pool of 200 concurrent streams, alternating, so
    // they share the same load at the same moments.
    const directTtft: number[] = [];
    const routedTtft: number[] = [];
    await runConcurrently(STREAM_CALLS * 2, STREAM_CONCURRENCY, async (index) => {
      if (index % 2 === 0) directTtft.push(await firstToken(directStream));
      else routedTtft.push(await firstToken(routedStream));
    });
    const streamedDirect = { perSecond: directPerSecond, ttft: sorted(directTtft) };
    const streamedRouted = { perSecond: routedPerSecond, ttft: sorted(routedTtft) };
    const ttftOverhead99 =
      percentile(streamedRouted.ttft, 0.99) - percentile(streamedDirect.ttft, 0.99);

    const overhead99 = r99 - d99;
    return [
      {
        name: 'router overhead per call, p50 (routed − direct)',
        value: round((r50 - d50) * 1000, 0),
        unit: 'µs',
        baseline: 'direct call, same client, interleaved',
        ratio: round(r50 / d50),
        details: {
          directP50Ms: round(d50, 3),
          routedP50Ms: round(r50, 3),
          pairs: SEQUENTIAL_PAIRS,
        },
      },
      {
        name: 'router overhead per call, p99 (routed − direct)',
        value: round(overhead99 * 1000, 0),
        unit: 'µs',
        baseline: 'direct call, same client, interleaved',
        ratio: round(r99 / d99),
        target: 'p99 overhead < 1 ms',
        met: overhead99 < 1,
        details: { directP99Ms: round(d99, 3), routedP99Ms: round(r99, 3) },
      },
      {
        name: 'router self time per call (in-memory provider), p99',
        value: round((percentile(selfTimes, 0.99) - percentile(baseTimes, 0.99)) * 1000, 1),
        unit: 'µs',
        baseline: 'the same provider called directly',
        details: {
          routerP50Us: round(percentile(selfTimes, 0.5) * 1000, 1),
          directP50Us: round(percentile(baseTimes, 0.5) * 1000, 1),
        },
      },
      {
        name: `streaming throughput, ${STREAM_CONCURRENCY} concurrent`,
        value: round(streamedRouted.perSecond, 0),
        unit: 'calls/s',
        baseline: 'direct streams',
        ratio: round(streamedRouted.perSecond / streamedDirect.perSecond),
        details: { directPerSecond: round(streamedDirect.perSecond, 0), calls: STREAM_CALLS },
      },
      {
        name: `time to first token overhead, p99, ${STREAM_CONCURRENCY} concurrent`,
        value: round(ttftOverhead99, 2),
        unit: 'ms',
        baseline: 'direct streams',
        ratio: round(percentile(streamedRouted.ttft, 0.99) / percentile(streamedDirect.ttft, 0.99)),
        details: {
          directTtftP99Ms: round(percentile(streamedDirect.ttft, 0.99), 2),
          routedTtftP99Ms: round(percentile(streamedRouted.ttft, 0.99), 2),
          routedTtftP50Ms: round(percentile(streamedRouted.ttft, 0.5), 2),
        },
      },
    ];
  } finally {
    child.kill('SIGINT');
    await once(child, 'exit');
  }
}
