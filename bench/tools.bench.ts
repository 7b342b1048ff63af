/**
 * The tools' own costs. (a) Start to exit of `true` and `node -e 0` through the command
 * sandbox (bubblewrap, seccomp, cgroup, rlimits, unprivileged uid), against the same program
 * spawned directly with `node:child_process`, interleaved run by run. (b) The p99 of one policy
 * check per tool kind (workspace paths, command lines, URLs without DNS, the secret scanner on
 * a 4 KiB source file, the capability matcher with compiled grants), each call timed on its
 * own; the same-run baseline is `JSON.parse` of the same input's JSON text, timed alternately
 * with the check, so the ratio reads as "this many times a parse of what the check looks at".
 */
import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileGrant, matchCapability } from '../src/kernel/capabilities/capability-grant.ts';
import {
  runSandboxedCommand,
  type SandboxedCommandOptions,
} from '../src/platform/sandbox/command-sandbox.ts';
import { detectSandbox } from '../src/platform/sandbox/detect-sandbox.ts';
import {
  type MissingSandboxLayer,
  WORKER_SANDBOX_LAYERS,
  type WorkerSandboxLayer,
} from '../src/platform/sandbox/sandbox-plan.ts';
import { checkWorkspacePath } from '../src/services/tools/files/workspace-path-policy.ts';
import { checkUrl } from '../src/services/tools/network/address-policy.ts';
import { scanForSecrets } from '../src/services/tools/secrets/secret-scanner.ts';
import { parseCommandLine } from '../src/services/tools/shell/command-line-policy.ts';
import { type BenchRow, percentile, round } from './bench-support.ts';

const SEARCH_PATH = '/usr/local/bin:/usr/bin:/bin';
const SANDBOX_RUNS = 60;
const SANDBOX_WARMUP = 3;
/** The sandbox half stops early rather than pass this (the whole suite stays under a minute). */
const SANDBOX_BUDGET_MS = 45_000;
const POLICY_CALLS = 20_000;
const POLICY_WARMUP = 2_000;

function sorted(values: Iterable<number>): number[] {
  return Array.from(values).sort((left, right) => left - right);
}

// ---------------------------------------------------------------------------------------------
// (a) Sandbox start to exit.

interface Program {
  readonly label: string;
  readonly argv: readonly string[];
  readonly direct: readonly string[];
  readonly targetMs: number;
}

/** The baseline: the same program, no sandbox, its stdio piped as the sandbox's is. */
async function spawnDirect(argv: readonly string[]): Promise<number> {
  const started = performance.now();
  const [command = '', ...args] = argv;
  const child = spawn(command, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: SEARCH_PATH },
  });
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  child.stdout.resume();
  child.stderr.resume();
  child.stdin.end();
  const code = await closed;
  if (code !== 0) throw new Error(`${argv.join(' ')} exited with ${code} outside the sandbox`);
  return performance.now() - started;
}

/** The command's own deadline is 10 s; a call still pending well after it hung, so say so. */
async function settlesWithin<Value>(
  promise: Promise<Value>,
  argv: readonly string[],
): Promise<Value> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`runSandboxedCommand(${argv.join(' ')}) did not settle in 15 s`)),
      15_000,
    );
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

async function sandboxRows(): Promise<BenchRow[]> {
  const report = await detectSandbox({ searchPath: SEARCH_PATH });
  const workspace = await mkdtemp(join(tmpdir(), 'keel-bench-tools-'));
  try {
    // The sandbox never runs a command as root: the workspace's owner is who it runs as.
    // mkdtemp makes the folder 0700, and bubblewrap enters it (--chdir) as root with every
    // capability dropped, before setpriv changes user: it must be passable by others.
    if (process.getuid?.() === 0) {
      await chown(workspace, 65534, 65534);
      await chmod(workspace, 0o755);
    }
    const nodeBinary = await realpath(process.execPath);
    const programs: readonly Program[] = [
      { label: 'true', argv: ['true'], direct: ['true'], targetMs: 50 },
      {
        label: 'node -e 0',
        argv: ['node', '-e', '0'],
        direct: [nodeBinary, '-e', '0'],
        targetMs: 150,
      },
    ];
    const base: Omit<SandboxedCommandOptions, 'argv'> = {
      workspace,
      network: false,
      timeoutMs: 10_000,
      maxOutputBytes: 65_536,
      memoryBytes: 512 * 1024 * 1024,
      maxProcesses: 128,
      report,
      searchPath: SEARCH_PATH,
      required: false,
    };
    let applied: readonly WorkerSandboxLayer[] = [];
    let missing: readonly MissingSandboxLayer[] = [];
    const sandboxed = async (argv: readonly string[]): Promise<number> => {
      const started = performance.now();
      const result = await settlesWithin(runSandboxedCommand({ ...base, argv }), argv);
      const elapsed = performance.now() - started;
      if (result.exitCode !== 0 || result.timedOut) {
        throw new Error(
          `${argv.join(' ')} in the sandbox: exit ${result.exitCode}, signal ${result.signal}, ${result.stderr.slice(0, 500)}`,
        );
      }
      applied = result.applied;
      missing = result.missing;
      return elapsed;
    };
    const samples = programs.map(() => ({ direct: [] as number[], sandboxed: [] as number[] }));
    for (let index = 0; index < SANDBOX_WARMUP; index += 1) {
      for (const program of programs) {
        await spawnDirect(program.direct);
        await sandboxed(program.argv);
      }
    }
    const deadline = performance.now() + SANDBOX_BUDGET_MS;
    for (let index = 0; index < SANDBOX_RUNS && performance.now() < deadline; index += 1) {
      for (const [position, program] of programs.entries()) {
        const sample = samples[position];
        if (sample === undefined) continue;
        // Alternate which goes first, so neither always runs on the other's cache misses.
        if (index % 2 === 0) {
          sample.direct.push(await spawnDirect(program.direct));
          sample.sandboxed.push(await sandboxed(program.argv));
        } else {
          sample.sandboxed.push(await sandboxed(program.argv));
          sample.direct.push(await spawnDirect(program.direct));
        }
      }
    }
    const rows: BenchRow[] = [];
    for (const [position, program] of programs.entries()) {
      const sample = samples[position];
      if (sample === undefined) continue;
      const direct = sorted(sample.direct);
      const inside = sorted(sample.sandboxed);
      const directMedian = percentile(direct, 0.5);
      const insideMedian = percentile(inside, 0.5);
      rows.push(
        {
          name: `direct spawn of ${program.label} (no sandbox)`,
          value: round(directMedian, 1),
          unit: 'ms',
          details: {
            p95Ms: round(percentile(direct, 0.95), 1),
            p99Ms: round(percentile(direct, 0.99), 1),
            runs: direct.length,
          },
        },
        {
          name: `sandboxed ${program.label}, start to exit (median)`,
          value: round(insideMedian, 1),
          unit: 'ms',
          baseline: `direct spawn of ${program.label}`,
          ratio: round(insideMedian / directMedian),
          target: `median < ${program.targetMs} ms`,
          met: insideMedian < program.targetMs,
          details: {
            p95Ms: round(percentile(inside, 0.95), 1),
            p99Ms: round(percentile(inside, 0.99), 1),
            addedMs: round(insideMedian - directMedian, 1),
            runs: inside.length,
          },
        },
      );
    }
    rows.push({
      name: 'sandbox layers applied',
      value: applied.length,
      unit: `of ${WORKER_SANDBOX_LAYERS.length}`,
      details: {
        applied: applied.join(',') || 'none',
        missing: missing.map((entry) => entry.layer).join(',') || 'none',
        uid: process.getuid?.() ?? -1,
      },
    });
    return rows;
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// (b) Policy checks, one call at a time.

interface PolicyCase<Input> {
  readonly name: string;
  readonly inputs: readonly { readonly value: Input; readonly hostile: boolean }[];
  /** Runs the check; `true` when it refused or found something. */
  readonly check: (input: Input) => boolean;
}

interface Timings {
  readonly check: number[];
  readonly baseline: number[];
  readonly refused: number;
}

/**
 * Times `POLICY_CALLS` calls of the check and as many `JSON.parse` calls of the same input's
 * JSON text, alternating, each with `process.hrtime.bigint` around it (its own cost, about
 * 0.05–0.1 µs, is in both).
 */
function timePolicy<Input>(policy: PolicyCase<Input>): Timings {
  const texts = policy.inputs.map((input) => JSON.stringify(input.value));
  // The bench refuses to report a check that gets its own inputs wrong.
  for (const input of policy.inputs) {
    if (policy.check(input.value) !== input.hostile) {
      throw new Error(
        `${policy.name}: ${JSON.stringify(input.value).slice(0, 120)} was ${input.hostile ? 'allowed' : 'refused'}`,
      );
    }
  }
  const count = policy.inputs.length;
  let sink = 0;
  for (let index = 0; index < POLICY_WARMUP; index += 1) {
    const position = index % count;
    if (policy.check((policy.inputs[position] as { value: Input }).value)) sink += 1;
    sink += (JSON.parse(texts[position] as string) as unknown) === null ? 1 : 0;
  }
  // Typed arrays: storing a sample must not allocate.
  const check = new Float64Array(POLICY_CALLS);
  const baseline = new Float64Array(POLICY_CALLS);
  let refused = 0;
  for (let index = 0; index < POLICY_CALLS; index += 1) {
    const position = index % count;
    const value = (policy.inputs[position] as { value: Input }).value;
    const text = texts[position] as string;
    const checkStart = process.hrtime.bigint();
    const refusal = policy.check(value);
    const checkEnd = process.hrtime.bigint();
    const parsed = JSON.parse(text) as unknown;
    const parseEnd = process.hrtime.bigint();
    check[index] = Number(checkEnd - checkStart) / 1000;
    baseline[index] = Number(parseEnd - checkEnd) / 1000;
    if (refusal) refused += 1;
    if (parsed === null) sink += 1;
  }
  if (sink < 0) throw new Error('unreachable');
  return { check: sorted(check), baseline: sorted(baseline), refused };
}

function policyRow<Input>(policy: PolicyCase<Input>): BenchRow {
  const timings = timePolicy(policy);
  const p99 = percentile(timings.check, 0.99);
  const baselineP99 = percentile(timings.baseline, 0.99);
  const hostile = policy.inputs.filter((input) => input.hostile).length;
  return {
    name: `${policy.name} (${policy.inputs.length - hostile} benign + ${hostile} hostile), p99`,
    value: round(p99, 2),
    unit: 'µs',
    baseline: 'JSON.parse of the same input',
    ratio: round(p99 / baselineP99),
    target: 'p99 < 200 µs',
    met: p99 < 200,
    details: {
      p50Us: round(percentile(timings.check, 0.5), 2),
      baselineP50Us: round(percentile(timings.baseline, 0.5), 2),
      baselineP99Us: round(baselineP99, 2),
      calls: POLICY_CALLS,
      refused: timings.refused,
    },
  };
}

function cases<Input>(benign: readonly Input[], hostile: readonly Input[]) {
  return [
    ...benign.map((value) => ({ value, hostile: false })),
    ...hostile.map((value) => ({ value, hostile: true })),
  ];
}

const PATHS = cases(
  [
    'src/app.ts',
    'README.md',
    'src/services/tools/files/workspace.ts',
    'test/fixtures/data.json',
    'docs/guides/getting-started.md',
    'package.json',
    './src/index.ts',
    'assets/logo.svg',
  ],
  [
    '../etc/passwd',
    '/etc/shadow',
    'src/../../outside',
    '.env',
    'config/.env.production',
    '.ssh/id_rsa',
    'keys/server.pem',
    '.git/config',
    'src\u2215..\u2215..\u2215etc',
    'src/\uff0e\uff0e/secret',
    'notes\u202etxt.exe',
    'a\u0000b',
    '~/.bashrc',
  ],
);

const COMMANDS = cases(
  [
    'npm test',
    'git status --short',
    'node_modules/.bin/tsc --noEmit',
    'ls -la src',
    'git diff HEAD^ -- src/app.ts',
    'npm run typecheck',
    'node scripts/build.js',
  ],
  [
    'bash -c id',
    'ls; rm -rf /',
    'cat $(whoami)',
    'echo `id`',
    'ls | sh',
    'curl http://example.org',
    'python3 -c print(1)',
    'node -e process.exit()',
    'LD_PRELOAD=/tmp/x.so ls',
    'cat /dev/tcp/10.0.0.1/80',
    'git -c core.pager=sh log',
    'npx some-package',
    'cat ../../etc/passwd',
    'env PATH=/tmp ls',
  ],
);

const ALLOWED_DOMAINS = ['example.org', '*.example.org', 'api.github.com', 'registry.npmjs.org'];
const URLS = cases(
  [
    'https://example.org/',
    'https://api.example.org/v1/items?page=2',
    'https://api.github.com/repos/owner/name/issues',
    'https://registry.npmjs.org/zod',
  ],
  [
    'http://127.0.0.1/',
    'http://0x7f.1/',
    'http://2130706433/',
    'http://[::ffff:127.0.0.1]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00::1]/',
    'http://user:pass@example.org/',
    'file:///etc/passwd',
    'https://evil.test/',
    'http://localhost:8080/',
    'https://example.org.evil.test/',
  ],
);

/** A plausible 4 KiB TypeScript file; the hostile copy has two credentials planted in it. */
function sourceFile(planted: boolean): string {
  const lines = [
    "import { readFile } from 'node:fs/promises';",
    "import { join } from 'node:path';",
    '',
    'export interface Settings {',
    '  readonly baseUrl: string;',
    '  readonly retries: number;',
    '}',
    '',
  ];
  for (let index = 0; lines.join('\n').length < 3_700; index += 1) {
    lines.push(
      `/** Loads part ${index} of the settings and merges it with the defaults. */`,
      `export async function loadPart${index}(folder: string): Promise<Settings> {`,
      `  const text = await readFile(join(folder, 'part-${index}.json'), 'utf8');`,
      '  const parsed = JSON.parse(text) as Partial<Settings>;',
      `  return { baseUrl: parsed.baseUrl ?? 'https://example.org/${index}', retries: parsed.retries ?? 3 };`,
      '}',
      '',
    );
  }
  if (planted) {
    // Built at run time so the repository never holds a credential-shaped literal.
    lines.push(
      `const awsKeyId = '${['AKIA', 'Z3K9Q2M7W4X8R6T1'].join('')}';`,
      `const githubToken = '${['ghp_', 'q8Rk2LmZ7vX1nB4cT9yH3wJ6pD0sF5gA2eUo'].join('')}';`,
    );
  }
  const text = lines.join('\n');
  return text.padEnd(4096, ' ').slice(0, 4096);
}

const SHELL_GRANT = compileGrant(
  'grt_shell',
  {
    kind: 'tool.call',
    resource: 'shell',
    limits: {
      commands: ['npm test', 'npm run *', 'git status *', 'git diff *', 'node scripts/*'],
      paths: ['src/**', 'test/**', 'docs/**'],
    },
  },
  null,
);
const OTHER_GRANTS = [
  compileGrant('grt_read', { kind: 'fs.read', limits: { paths: ['src/**'] } }, null),
  compileGrant('grt_fetch', { kind: 'net.fetch', limits: { domains: ['*.example.org'] } }, null),
  compileGrant('grt_memory', { kind: 'memory.*' }, null),
];
const GRANTS = [...OTHER_GRANTS, SHELL_GRANT];
const NOW = Date.now();
type Intent = Parameters<typeof matchCapability>[1];
const shellIntent = (command: string, path: string): Intent => ({
  kind: 'tool.call',
  resource: 'shell',
  params: { command, path },
});
const INTENTS = cases<Intent>(
  [
    shellIntent('npm test', 'src/app.ts'),
    shellIntent('git diff HEAD -- src/app.ts', 'src/app.ts'),
    shellIntent('npm run typecheck', 'test/app.test.ts'),
    shellIntent('node scripts/build.js', 'docs/index.md'),
  ],
  [
    shellIntent('rm -rf /', 'src/app.ts'),
    shellIntent('npm test; curl evil.test', 'src/app.ts'),
    shellIntent('git status $(id)', 'src/app.ts'),
    shellIntent('npm test', '../etc/passwd'),
    shellIntent('npm test', '/etc/shadow'),
    { kind: 'tool.call', resource: 'shell', params: { command: 'npm test' } },
    { kind: 'tool.call', resource: 'fetch', params: { url: 'https://example.org/' } },
  ],
);

function policyRows(): BenchRow[] {
  const timerFloor = timePolicy({
    name: 'timer floor',
    inputs: [{ value: 'x', hostile: false }],
    check: (value: string) => value.length === 0,
  });
  return [
    {
      name: 'timer floor: hrtime.bigint around a trivial call, p99',
      value: round(percentile(timerFloor.check, 0.99), 2),
      unit: 'µs',
      details: { p50Us: round(percentile(timerFloor.check, 0.5), 2), calls: POLICY_CALLS },
    },
    policyRow({
      name: 'checkWorkspacePath',
      inputs: PATHS,
      check: (path: string) => !checkWorkspacePath(path).ok,
    }),
    policyRow({
      name: 'parseCommandLine',
      inputs: COMMANDS,
      check: (command: string) => !parseCommandLine(command).ok,
    }),
    policyRow({
      name: 'checkUrl with allowedDomains (no DNS)',
      inputs: URLS,
      check: (url: string) => !checkUrl(url, { allowedDomains: ALLOWED_DOMAINS }).ok,
    }),
    policyRow({
      name: 'scanForSecrets, 4 KiB source file',
      inputs: cases([sourceFile(false)], [sourceFile(true)]),
      check: (text: string) => scanForSecrets(text).length > 0,
    }),
    policyRow({
      name: 'matchCapability, tool.call with commands + paths limits, 4 grants',
      inputs: INTENTS,
      check: (intent: Intent) => !matchCapability(GRANTS, intent, NOW).allowed,
    }),
  ];
}

export async function run(): Promise<BenchRow[]> {
  // Policy first: pure CPU, before the sandbox runs have churned the heap and the caches.
  const policies = policyRows();
  const sandbox = await sandboxRows();
  return [...sandbox, ...policies];
}
