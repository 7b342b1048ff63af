/**
 * Gate decision throughput and latency for an allowed syscall with a no-op executor, through
 * the real composition root (SQLite file, storage worker, group commit), audit append
 * included. The same-run baseline is the bare durable audit append at the same concurrency:
 * the gate's own cost is the ratio between them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfiguration } from '../src/kernel/config/load-configuration.ts';
import { createId } from '../src/platform/ids/create-id.ts';
import { startNode } from '../src/runtime/node.ts';
import { silentLogger } from '../test/support/silent-logger.ts';
import { type BenchRow, percentile, round, runConcurrently } from './bench-support.ts';

const DECISIONS = 30_000;
const SWEEP = [1, 8, 16, 32, 64] as const;

function sorted(values: number[]): number[] {
  return values.sort((left, right) => left - right);
}

export async function run(): Promise<BenchRow[]> {
  const directory = await mkdtemp(join(tmpdir(), 'keel-bench-gate-'));
  const loaded = await loadConfiguration({
    dataDirectory: join(directory, 'keel'),
    environment: {},
  });
  const logger = silentLogger();
  const node = await startNode({
    loaded,
    logger,
    executors: [
      { specificationVersion: 'v1', kind: 'tool.noop', doExecute: async () => ({ value: null }) },
      {
        specificationVersion: 'v1',
        kind: 'tool.metered',
        estimate: () => ({ calls: 1 }),
        doExecute: async () => ({ value: null, usage: { calls: 1 } }),
      },
    ],
  });
  try {
    const { kernel, storage } = node;
    const agent = await kernel.agents.register(
      { name: 'bench', trustLevel: 'standard' },
      'operator:bench',
    );
    await kernel.agents.setState(agent.id, 'running');
    await kernel.capabilities.grant(agent.id, { kind: 'tool.noop' }, 'operator:bench');
    await kernel.capabilities.grant(agent.id, { kind: 'tool.metered' }, 'operator:bench');
    const run = await storage.runs.create({
      id: createId('run'),
      agentId: agent.id,
      task: {},
      now: Date.now(),
    });
    const intent = { kind: 'tool.noop', resource: 'bench', params: { n: 1 } };
    const draft = {
      kind: 'bench.baseline',
      actor: `agent:${agent.id}`,
      agentId: agent.id,
      runId: null,
      subject: 'tool.noop bench',
      outcome: 'ok',
      code: null,
      data: {
        seq: null,
        grantId: 'grt_x',
        digest: 'd'.repeat(64),
        params: { n: 1 },
        durationMs: 0,
      },
    };

    // Warm-up: JIT, caches, statement preparation.
    await runConcurrently(3_000, 32, () => kernel.gate.call({ agentId: agent.id }, intent));

    const baseline = await runConcurrently(DECISIONS, 32, () =>
      storage.audit.append([{ ...draft, ts: Date.now() }]),
    );
    const baselineRate = DECISIONS / (baseline.elapsedMs / 1000);
    const rows: BenchRow[] = [
      {
        name: 'bare durable audit append, 32 in flight',
        value: Math.round(baselineRate),
        unit: 'appends/s',
        details: {
          p50Ms: round(percentile(sorted(baseline.latencies), 0.5), 3),
          p99Ms: round(percentile(sorted(baseline.latencies), 0.99), 3),
        },
      },
    ];
    const row = (
      name: string,
      result: { latencies: number[]; elapsedMs: number },
      count: number,
    ): BenchRow => {
      const latencies = sorted(result.latencies);
      const rate = count / (result.elapsedMs / 1000);
      const p99 = percentile(latencies, 0.99);
      return {
        name,
        value: Math.round(rate),
        unit: 'decisions/s',
        baseline: 'bare audit append',
        ratio: round(baselineRate / rate),
        target: '≥ 20,000 decisions/s and p99 < 2 ms',
        met: rate >= 20_000 && p99 < 2,
        details: {
          p50Ms: round(percentile(latencies, 0.5), 3),
          p99Ms: round(p99, 3),
          p999Ms: round(percentile(latencies, 0.999), 3),
        },
      };
    };
    // A sweep over how many calls are in flight (agents calling at once): throughput grows
    // with concurrency, and so does each call's wait for its group commit.
    for (const concurrency of SWEEP) {
      const count = concurrency === 1 ? 3_000 : DECISIONS;
      const result = await runConcurrently(count, concurrency, () =>
        kernel.gate.call({ agentId: agent.id }, intent),
      );
      rows.push(row(`gate, allowed no-op syscall, ${concurrency} in flight`, result, count));
    }
    const journaled = await runConcurrently(DECISIONS, 32, (index) =>
      kernel.gate.call({ agentId: agent.id, runId: run.id, seq: index + 1 }, intent),
    );
    rows.push(row('gate, no-op in a durable run (journaled), 32 in flight', journaled, DECISIONS));
    const metered = await runConcurrently(DECISIONS, 32, () =>
      kernel.gate.call({ agentId: agent.id }, { ...intent, kind: 'tool.metered' }),
    );
    rows.push(row('gate, no-op with budget reserve + settle, 32 in flight', metered, DECISIONS));
    const verification = await kernel.audit.verify();
    rows.push({
      name: 'audit chain after the run verifies',
      value: verification.checked,
      unit: 'entries',
      target: 'intact',
      met: verification.intact && verification.checked === verification.total,
    });
    return rows;
  } finally {
    await node.close('benchmark done');
    await rm(directory, { recursive: true, force: true });
  }
}
