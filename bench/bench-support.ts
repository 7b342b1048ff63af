/** Shared helpers for Keel's benchmarks: timing, percentiles, and result rows. */

export interface BenchRow {
  /** What was measured. */
  readonly name: string;
  /** The headline number. */
  readonly value: number;
  readonly unit: string;
  /** The same-run baseline this row is compared with, if any. */
  readonly baseline?: string;
  /** value ÷ baseline value (for times: how many times slower than the baseline). */
  readonly ratio?: number;
  /** The target, in words, and whether this run met it. */
  readonly target?: string;
  readonly met?: boolean;
  readonly details?: Readonly<Record<string, number | string>>;
}

export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((left, right) => left - right),
    0.5,
  );
}

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Runs `tasks` with at most `concurrency` in flight; returns each task's latency in ms. */
export async function runConcurrently(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<unknown>,
): Promise<{ latencies: number[]; elapsedMs: number }> {
  // A typed array: storing a latency must not allocate (a plain array of doubles would box
  // each one and give the garbage collector work the code under test did not cause).
  const latencies = new Float64Array(count);
  let next = 0;
  const started = performance.now();
  async function lane(): Promise<void> {
    for (;;) {
      const index = next;
      next += 1;
      if (index >= count) return;
      const begin = performance.now();
      await task(index);
      latencies[index] = performance.now() - begin;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { latencies: Array.from(latencies), elapsedMs: performance.now() - started };
}
