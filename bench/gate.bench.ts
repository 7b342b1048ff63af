/**
 * Gate decision throughput and latency for an allowed syscall with a no-op executor, through
 * the real composition root (SQLite file, storage worker, group commit), audit append
 * included. The same-run baseline is the bare durable audit append at the same concurrency:
 * the gate's own cost is the ratio between them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfiguration } from '../src/kernel/config/load-configuration.ts';
import { createId } from '../src/platform/ids/create-id.ts';
import { createLogger } from '../src/platform/observability/logger.ts';
import { SecretRedactor } from '../src/platform/observability/secret-redactor.ts';
import { startNode } from '../src/runtime/node.ts';
import { type BenchRow, percentile, round, runConcurrently } from './bench-support.ts';

const DECISIONS = 30_000;
const CONCURRENCY = 64;

function sorted(values: number[]): number[] {
  return values.sort((left, right) => left - right);
}

export async function run(): Promise<BenchRow[]> {
  const directory = await mkdtemp(join(tmpdir(), 'keel-bench-gate-'));
  const loaded = await loadConfiguration({
    dataDirectory: join(directory, 'keel'),
    environment: {},
  });
  const logger = createLogger({
    level: 'warn',
    format: 'json',
    redactor: new SecretRedactor([]),
    destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
  });
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
    await runConcurrently(2_000, CONCURRENCY, () =>
      kernel.gate.call({ agentId: agent.id }, intent),
    );

    const baseline = await runConcurrently(DECISIONS, CONCURRENCY, () =>
      storage.audit.append([{ ...draft, ts: Date.now() }]),
    );
    const plain = await runConcurrently(DECISIONS, CONCURRENCY, () =>
      kernel.gate.call({ agentId: agent.id }, intent),
    );
    const journaled = await runConcurrently(DECISIONS, CONCURRENCY, (index) =>
      kernel.gate.call({ agentId: agent.id, runId: run.id, seq: index + 1 }, intent),
    );
    const metered = await runConcurrently(DECISIONS, CONCURRENCY, () =>
      kernel.gate.call({ agentId: agent.id }, { ...intent, kind: 'tool.metered' }),
    );
    const sequential = await runConcurrently(3_000, 1, () =>
      kernel.gate.call({ agentId: agent.id }, intent),
    );

    const baselineRate = DECISIONS / (baseline.elapsedMs / 1000);
    const row = (
      name: string,
      result: { latencies: number[]; elapsedMs: number },
      count: number,
      withTargets: boolean,
    ): BenchRow => {
      const latencies = sorted(result.latencies);
      const rate = count / (result.elapsedMs / 1000);
      const p99 = percentile(latencies, 0.99);
      return {
        name,
        value: Math.round(rate),
        unit: 'decisions/s',
        baseline: 'bare audit append, same concurrency',
        ratio: round(baselineRate / rate),
        ...(withTargets
          ? { target: '≥ 20,000 decisions/s and p99 < 2 ms', met: rate >= 20_000 && p99 < 2 }
          : {}),
        details: {
          p50Ms: round(percentile(latencies, 0.5), 3),
          p99Ms: round(p99, 3),
          maxMs: round(latencies.at(-1) ?? 0, 3),
        },
      };
    };
    const verification = await kernel.audit.verify();
    return [
      {
        name: `bare audit append, ${CONCURRENCY} in flight`,
        value: Math.round(baselineRate),
        unit: 'appends/s',
        details: {
          p50Ms: round(percentile(sorted(baseline.latencies), 0.5), 3),
          p99Ms: round(percentile(sorted(baseline.latencies), 0.99), 3),
        },
      },
      row(`gate, allowed no-op syscall, ${CONCURRENCY} in flight`, plain, DECISIONS, true),
      row(
        `gate, allowed no-op in a durable run (journaled), ${CONCURRENCY} in flight`,
        journaled,
        DECISIONS,
        false,
      ),
      row(
        `gate, allowed no-op with budget reserve+settle, ${CONCURRENCY} in flight`,
        metered,
        DECISIONS,
        false,
      ),
      row('gate, allowed no-op syscall, one at a time', sequential, 3_000, false),
      {
        name: 'audit chain after the run verifies',
        value: verification.checked,
        unit: 'entries',
        target: 'intact',
        met: verification.intact && verification.checked === verification.total,
      },
    ];
  } finally {
    await node.close('benchmark done');
    await rm(directory, { recursive: true, force: true });
  }
}
