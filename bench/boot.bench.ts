/**
 * Boot to ready and clean stop of a real `keel start` process (a fresh data directory and an
 * existing one), against the same run's bare Node.js start-up (`node -e ''`) and against
 * starting the node in-process (no Node start-up, no module loading after the first).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfiguration } from '../src/kernel/config/load-configuration.ts';
import { startNode } from '../src/runtime/node.ts';
import { silentLogger } from '../test/support/silent-logger.ts';
import { type BenchRow, median, percentile, round } from './bench-support.ts';

const RUNS = 7;
const KEEL = fileURLToPath(new URL('../bin/keel.js', import.meta.url));

async function bareNode(): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return performance.now() - started;
}

async function keelProcess(
  dataDirectory: string,
): Promise<{ readyMs: number; stopMs: number; exitCode: number | null }> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [KEEL, 'start', '--data-dir', dataDirectory, '--port', '0', '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { PATH: process.env.PATH ?? '', HOME: dataDirectory },
    },
  );
  const exited = once(child, 'exit') as Promise<[number | null]>;
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Keel ready at')) resolve();
    });
    void exited.then(() => reject(new Error(`keel start exited early: ${output}`)));
  });
  const readyMs = performance.now() - started;
  const stopping = performance.now();
  child.kill('SIGTERM');
  const [exitCode] = await exited;
  return { readyMs, stopMs: performance.now() - stopping, exitCode };
}

export async function run(): Promise<BenchRow[]> {
  const directory = await mkdtemp(join(tmpdir(), 'keel-bench-boot-'));
  try {
    const bare: number[] = [];
    const fresh: Array<{ readyMs: number; stopMs: number; exitCode: number | null }> = [];
    const warm: Array<{ readyMs: number; stopMs: number; exitCode: number | null }> = [];
    const existing = join(directory, 'existing');
    await keelProcess(existing);
    for (let index = 0; index < RUNS; index += 1) {
      bare.push(await bareNode());
      fresh.push(await keelProcess(join(directory, `fresh-${index}`)));
      warm.push(await keelProcess(existing));
    }
    const logger = silentLogger();
    const inProcess: number[] = [];
    const inProcessStop: number[] = [];
    for (let index = 0; index < RUNS; index += 1) {
      const started = performance.now();
      const node = await startNode({
        loaded: await loadConfiguration({
          dataDirectory: join(directory, `in-process-${index}`),
          environment: {},
        }),
        logger,
      });
      inProcess.push(performance.now() - started);
      const stopping = performance.now();
      await node.close();
      inProcessStop.push(performance.now() - stopping);
    }
    const bareMedian = median(bare);
    const summarise = (name: string, samples: typeof fresh): BenchRow[] => {
      const ready = samples.map((sample) => sample.readyMs).sort((left, right) => left - right);
      const stop = samples.map((sample) => sample.stopMs).sort((left, right) => left - right);
      const readyMedian = median(ready);
      return [
        {
          name: `keel start to ready, ${name}`,
          value: round(readyMedian, 1),
          unit: 'ms',
          baseline: "bare Node.js start-up (node -e '')",
          ratio: round(readyMedian / bareMedian),
          target: 'ready < 500 ms',
          met: readyMedian < 500,
          details: { p90Ms: round(percentile(ready, 0.9), 1), runs: samples.length },
        },
        {
          name: `keel stop on SIGTERM, ${name}`,
          value: round(median(stop), 1),
          unit: 'ms',
          details: {
            p90Ms: round(percentile(stop, 0.9), 1),
            exitCodes: [...new Set(samples.map((sample) => sample.exitCode))].join(','),
          },
        },
      ];
    };
    return [
      {
        name: "bare Node.js start-up (node -e '')",
        value: round(bareMedian, 1),
        unit: 'ms',
        details: { runs: bare.length },
      },
      ...summarise('fresh data directory', fresh),
      ...summarise('existing data directory', warm),
      {
        name: 'startNode in-process to ready (modules loaded)',
        value: round(median(inProcess), 1),
        unit: 'ms',
        details: { stopMs: round(median(inProcessStop), 1) },
      },
    ];
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
