/**
 * `npm run bench`: runs every benchmark in this directory, prints one table, and writes the
 * rows as JSON to bench/results/latest.json (and a timestamped copy). Figures are compared
 * with a baseline measured in the same run; absolute times on a shared machine are noisy.
 * `npm run bench -- gate` runs only the benchmarks whose file name contains "gate".
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import type { BenchRow } from './bench-support.ts';

const SUITES = [
  'boot',
  'gate',
  'audit-append',
  'router',
  'agent-loop',
  'tools',
  'control-loop',
  'perception',
] as const;

const filter = process.argv[2];
const results: Array<{ suite: string; rows: BenchRow[] }> = [];
for (const suite of SUITES) {
  if (filter !== undefined && !suite.includes(filter)) continue;
  process.stderr.write(`running ${suite}…\n`);
  const module = (await import(`./${suite}.bench.ts`)) as { run: () => Promise<BenchRow[]> };
  results.push({ suite, rows: await module.run() });
}

const table = results.flatMap(({ suite, rows }) =>
  rows.map((row) => [
    suite,
    row.name,
    `${row.value.toLocaleString('en-US')} ${row.unit}`,
    row.ratio === undefined ? '' : `${row.ratio}× ${row.baseline ?? ''}`.trim(),
    row.target === undefined ? '' : `${row.met ? 'met' : 'MISSED'}: ${row.target}`,
    row.details === undefined
      ? ''
      : Object.entries(row.details)
          .map(([key, value]) => `${key}=${value}`)
          .join(' '),
  ]),
);
const headers = ['SUITE', 'MEASURE', 'VALUE', 'RATIO TO BASELINE', 'TARGET', 'DETAILS'];
const widths = headers.map((header, column) =>
  Math.max(header.length, ...table.map((row) => (row[column] ?? '').length)),
);
const render = (cells: readonly string[]) =>
  cells
    .map((cell, column) => cell.padEnd(widths[column] ?? 0))
    .join('  ')
    .trimEnd();
console.log(render(headers));
for (const row of table) console.log(render(row));

const report = {
  at: new Date().toISOString(),
  node: process.version,
  machine: {
    cpus: availableParallelism(),
    model: cpus()[0]?.model ?? 'unknown',
    loadAverage: loadavg(),
  },
  results,
};
const directory = new URL('./results/', import.meta.url);
await mkdir(directory, { recursive: true });
const text = `${JSON.stringify(report, null, 2)}\n`;
await writeFile(new URL('latest.json', directory), text);
await writeFile(new URL(`bench-${report.at.replace(/[:.]/g, '-')}.json`, directory), text);
console.log(`\nwrote bench/results/latest.json`);
