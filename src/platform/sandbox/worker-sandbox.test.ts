import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { text } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { childEnvironment } from '../../../test/support/keel-process.ts';
import { withoutBubblewrap } from '../../../test/support/sandbox-reports.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { isKeelError } from '../errors/keel-error.ts';
import { pathExists } from '../files/path-exists.ts';
import { detectSandbox, type SandboxReport } from './detect-sandbox.ts';
import { WORKER_SANDBOX_LAYERS, type WorkerSandboxOptions } from './sandbox-plan.ts';
import { launchSandboxedWorker, type SandboxedWorker } from './worker-sandbox.ts';

const SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PROJECT_ROOT = join(import.meta.dirname, '../../..');
const MIB = 2 ** 20;
const RUNNING_AS_ROOT = process.getuid?.() === 0;
const INHERITED_LAUNCHER = join(PROJECT_ROOT, 'test/fixtures/inherited-descriptor-launcher.ts');

/** The worker program: answers one JSON request per line on descriptor 3 with one JSON line. */
const PROBE_PROGRAM = `
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { text } from 'node:stream/consumers';

process.stderr.write('probe started\\n');
const channel = new Socket({ fd: 3, readable: true, writable: true });
const reply = (value) => channel.write(JSON.stringify(value) + '\\n');
const attempt = (action) => {
  try {
    return { ok: true, value: action() ?? null };
  } catch (error) {
    return { ok: false, code: error.code ?? String(error) };
  }
};
const probes = {
  hello: () => reply({ pid: process.pid, uid: process.getuid() }),
  read: ({ path }) => reply(attempt(() => readFileSync(path, 'utf8').length)),
  readText: ({ path }) => reply(attempt(() => readFileSync(path, 'utf8'))),
  write: ({ path }) => reply(attempt(() => writeFileSync(path, 'written from a sandbox'))),
  environment: () => reply({ environment: process.env }),
  spawn: ({ file, args }) => {
    const result = spawnSync(file, args);
    reply({ code: result.error?.code ?? null, status: result.status });
  },
  connect: ({ host, port }) => {
    const socket = connect({ host, port });
    socket.once('connect', () => { socket.destroy(); reply({ ok: true }); });
    socket.once('error', (error) => reply({ ok: false, code: error.code }));
  },
  limits: () => reply({ limits: readFileSync('/proc/self/limits', 'utf8') }),
  allocate: ({ megabytes }) => {
    const kept = [];
    for (let index = 0; index < megabytes; index += 1) kept.push(Buffer.alloc(1 << 20, 1));
    reply({ allocated: kept.length });
  },
};
for await (const line of createInterface({ input: channel })) {
  const request = JSON.parse(line);
  probes[request.probe](request);
}
`;

let hiddenParent = '';
let probeDirectory = '';
let probePath = '';
let report: SandboxReport;

before(async () => {
  report = await detectSandbox({ searchPath: SEARCH_PATH });
  // The worker runs as another uid: its program must be readable by everyone. Its folder sits
  // in one only Keel's uid may enter (mkdtemp makes it 0700), like a clone under /root.
  hiddenParent = await mkdtemp(join(tmpdir(), 'keel-worker-sandbox-'));
  probeDirectory = join(hiddenParent, 'probe');
  await mkdir(probeDirectory, { mode: 0o755 });
  await chmod(probeDirectory, 0o755);
  probePath = join(probeDirectory, 'probe.mjs');
  await writeFile(probePath, PROBE_PROGRAM, { mode: 0o644 });
});

after(async () => {
  await rm(hiddenParent, { recursive: true, force: true });
});

/** These tests run real sandboxes: on a host without bubblewrap they fail, they do not skip. */
function requireBubblewrap(): void {
  assert.ok(
    report.bubblewrap.available,
    `bubblewrap is required for these tests (${report.bubblewrap.detail}); run \`npm run setup\`, which installs it`,
  );
  assert.ok(report.cgroups.available, `cgroups are required: ${report.cgroups.detail}`);
}

function optionsFor(overrides: Partial<WorkerSandboxOptions> = {}): WorkerSandboxOptions {
  return {
    nodePath: process.execPath,
    nodeArguments: [probePath],
    readOnlyPaths: [PROJECT_ROOT, probeDirectory],
    name: `test-${process.pid}-${Math.floor(Math.random() * 1e9)}`,
    memoryBytes: 256 * MIB,
    maxProcesses: 64,
    maxOpenFiles: 256,
    report,
    searchPath: SEARCH_PATH,
    required: true,
    ...overrides,
  };
}

interface ProbeWorker {
  readonly worker: SandboxedWorker;
  /** The worker's cgroup name. */
  readonly name: string;
  ask(probe: string, parameters?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

const workers: SandboxedWorker[] = [];

after(async () => {
  for (const worker of workers) await worker.dispose();
});

async function launchProbe(overrides: Partial<WorkerSandboxOptions> = {}): Promise<ProbeWorker> {
  if (overrides.report === undefined) requireBubblewrap();
  const options = optionsFor(overrides);
  const worker = await launchSandboxedWorker(options);
  workers.push(worker);
  const lines = createInterface({ input: worker.channel })[Symbol.asyncIterator]();
  return {
    worker,
    name: options.name,
    async ask(probe, parameters = {}) {
      worker.channel.write(`${JSON.stringify({ probe, ...parameters })}\n`);
      const next = await lines.next();
      assert.ok(next.done !== true, `the worker closed its channel while answering ${probe}`);
      return JSON.parse(next.value) as Record<string, unknown>;
    },
  };
}

/** The pids in the worker's memory cgroup: bubblewrap, its sandbox init and node. */
async function cgroupProcesses(name: string): Promise<number[]> {
  const text = await readFile(`/sys/fs/cgroup/memory/keel/${name}/cgroup.procs`, 'utf8');
  return text.split('\n').filter(Boolean).map(Number);
}

async function commandLine(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
}

async function nodeProcessOf(name: string): Promise<number> {
  for (const pid of await cgroupProcesses(name)) {
    const [program, ...args] = await commandLine(pid);
    if (program === process.execPath && args.includes(probePath)) return pid;
  }
  assert.fail(`no node process in the cgroup of ${name}`);
}

/** Whether other users can pass every folder from `/` down to `path` (o+x). */
async function everyFolderPassable(path: string): Promise<boolean> {
  for (let current = path; ; current = dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return false;
    if (dirname(current) === current) return true;
  }
}

/** The kill count of this test process's own memory cgroup (outside the worker's). */
async function ownOomKills(): Promise<number> {
  const memberships = await readFile('/proc/self/cgroup', 'utf8');
  const path = /^\d+:memory:(.*)$/m.exec(memberships)?.[1] ?? '/';
  const control = await readFile(join('/sys/fs/cgroup/memory', path, 'memory.oom_control'), 'utf8');
  return Number(/^oom_kill (\d+)$/m.exec(control)?.[1] ?? Number.NaN);
}

describe('launchSandboxedWorker', () => {
  it('applies every layer and talks over descriptor 3', async () => {
    const { worker, ask } = await launchProbe();
    assert.deepEqual(worker.missing, []);
    assert.deepEqual(worker.applied, [...WORKER_SANDBOX_LAYERS]);
    const hello = await ask('hello');
    assert.equal(typeof hello.pid, 'number');
  });

  it("hands the worker's stderr to the caller, from its first line", async () => {
    const { worker, ask } = await launchProbe();
    await ask('hello');
    const [chunk] = await once(worker.child.stderr!, 'data');
    assert.match(String(chunk), /^probe started$/m);
  });

  it('gives the worker no /etc/passwd to read', async () => {
    const { ask } = await launchProbe();
    assert.deepEqual(await ask('read', { path: '/etc/passwd' }), { ok: false, code: 'ENOENT' });
  });

  it('lets the worker reach no TCP server on 127.0.0.1, not even one the parent runs', async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as { port: number };
      const { ask } = await launchProbe();
      const answer = await ask('connect', { host: '127.0.0.1', port });
      assert.equal(answer.ok, false);
      assert.equal(connections, 0);
      // Its own network namespace, not only the seccomp filter: loopback is its only interface.
      const devices = await ask('readText', { path: '/proc/net/dev' });
      const interfaces = String(devices.value)
        .match(/^\s*[^\s:]+(?=:)/gm)
        ?.map((name) => name.trim());
      assert.deepEqual(interfaces, ['lo']);
    } finally {
      server.close();
    }
  });

  it('passes none of the parent environment to the worker', async () => {
    process.env.KEEL_SECRET_TEST = 'secret-value-the-worker-must-not-see';
    try {
      const { ask } = await launchProbe();
      const { environment } = (await ask('environment')) as {
        environment: Record<string, string>;
      };
      assert.equal('KEEL_SECRET_TEST' in environment, false);
      assert.ok(
        Object.keys(environment).every((key) => key === 'PWD'),
        `unexpected variables: ${Object.keys(environment).join(', ')}`,
      );
      assert.ok(!JSON.stringify(environment).includes('secret-value'));
    } finally {
      delete process.env.KEEL_SECRET_TEST;
    }
  });

  it('refuses to let the worker start any process (seccomp EPERM on fork)', async () => {
    const { ask } = await launchProbe();
    const node = await ask('spawn', { file: process.execPath, args: ['-e', '0'] });
    assert.deepEqual(node, { code: 'EPERM', status: null });
    const shell = await ask('spawn', { file: '/bin/sh', args: ['-c', 'true'] });
    assert.deepEqual(shell, { code: 'EPERM', status: null });
  });

  it('binds the project read-only', async () => {
    const { ask } = await launchProbe();
    const readable = await ask('read', { path: join(PROJECT_ROOT, 'package.json') });
    assert.equal(readable.ok, true);
    for (const path of [join(PROJECT_ROOT, 'sandbox-was-here'), join(probeDirectory, 'x')]) {
      assert.deepEqual(await ask('write', { path }), { ok: false, code: 'EROFS' }, path);
    }
    assert.equal(await pathExists(join(PROJECT_ROOT, 'sandbox-was-here')), false);
  });

  it('runs the worker as uid 65534 on the host when Keel is root', async () => {
    const { name, ask } = await launchProbe();
    await ask('hello');
    const pid = await nodeProcessOf(name);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const expected = RUNNING_AS_ROOT ? 65534 : process.getuid?.();
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(status)?.slice(1).map(Number);
    assert.deepEqual(uids, [expected, expected, expected, expected]);
    assert.match(status, /^Groups:\s*$/m);
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      assert.match(status, new RegExp(`^${set}:\\s+0{16}$`, 'm'), `${set} is not empty`);
    }
    assert.match(status, /^NoNewPrivs:\s+1$/m);
  });

  it('caps open files and core dumps with rlimits', async () => {
    const { ask } = await launchProbe({ maxOpenFiles: 200 });
    const { limits } = (await ask('limits')) as { limits: string };
    assert.match(limits, /^Max open files\s+200\s+200\s/m);
    assert.match(limits, /^Max core file size\s+0\s+0\s/m);
  });

  it('has the kernel kill a worker that allocates past its memory cap, and only it', async () => {
    const killsBefore = await ownOomKills();
    const { worker, ask } = await launchProbe({ memoryBytes: 64 * MIB });
    await ask('hello');
    const exited = once(worker.child, 'exit');
    worker.channel.write(`${JSON.stringify({ probe: 'allocate', megabytes: 512 })}\n`);
    await exited;
    assert.ok((await worker.oomKills()) >= 1, 'no OOM kill counted in the worker cgroup');
    assert.equal(await ownOomKills(), killsBefore);
    // This process is fine: it can still allocate and do work.
    assert.equal(
      Buffer.alloc(8 * MIB, 1).reduce((sum, byte) => sum + byte, 0),
      8 * MIB,
    );
  });

  it('dispose leaves no process behind and removes the cgroup directories', async () => {
    const { worker, name, ask } = await launchProbe();
    await ask('hello');
    const pids = await cgroupProcesses(name);
    assert.ok(pids.length >= 2, `expected bubblewrap and node in the cgroup, got ${pids}`);
    await Promise.all([worker.dispose(), worker.dispose()]);
    for (const pid of pids) {
      assert.equal(await isAlive(pid), false, `process ${pid} survived dispose`);
    }
    assert.equal(await pathExists(`/sys/fs/cgroup/memory/keel/${name}`), false);
    assert.equal(await pathExists(`/sys/fs/cgroup/pids/keel/${name}`), false);
    await worker.dispose();
  });

  it('without bubblewrap still applies cgroups and rlimits and names what is missing', async () => {
    const options = {
      report: { ...withoutBubblewrap(), cgroups: report.cgroups },
      required: false,
    };
    // Spawned directly as the unprivileged uid, node must pass every folder above the probe,
    // and the probe sits in a 0700 one: as root that is a refusal, never a root worker.
    if (RUNNING_AS_ROOT) {
      const error = await rejectsWithCode(
        launchSandboxedWorker(optionsFor(options)),
        'KEEL_SANDBOX_UNAVAILABLE',
      );
      assert.match(error.message, /as root: .*chmod o\+x its parents/);
    }
    // A probe others can reach (and node, when its checkout is reachable).
    await using open = await temporaryDirectory('keel-open-probe-');
    await chmod(open.path, 0o755);
    const openProbe = join(open.path, 'probe.mjs');
    await writeFile(openProbe, PROBE_PROGRAM, { mode: 0o644 });
    const reachable = optionsFor({
      ...options,
      nodeArguments: [openProbe],
      readOnlyPaths: [PROJECT_ROOT, open.path],
    });
    if (RUNNING_AS_ROOT && !(await everyFolderPassable(PROJECT_ROOT))) {
      await rejectsWithCode(launchSandboxedWorker(reachable), 'KEEL_SANDBOX_UNAVAILABLE');
      return;
    }
    const worker = await launchSandboxedWorker(reachable);
    workers.push(worker);
    assert.deepEqual(
      worker.missing.map((entry) => entry.layer),
      ['bubblewrap', 'network-namespace', 'read-only-root', 'seccomp'],
    );
    assert.deepEqual(worker.applied, [
      'unprivileged-uid',
      'cgroup-memory',
      'cgroup-pids',
      'rlimits',
    ]);
    const lines = createInterface({ input: worker.channel })[Symbol.asyncIterator]();
    worker.channel.write(`${JSON.stringify({ probe: 'limits' })}\n`);
    const { limits } = JSON.parse((await lines.next()).value as string) as { limits: string };
    assert.match(limits, /^Max open files\s+256\s+256\s/m);
    const status = await readFile(`/proc/${worker.child.pid}/status`, 'utf8');
    const expected = RUNNING_AS_ROOT ? 65534 : process.getuid?.();
    assert.match(status, new RegExp(`^Uid:\\s+${expected}\\s`, 'm'));
  });

  it('gives the worker none of the descriptors Keel inherited without close-on-exec', async () => {
    requireBubblewrap();
    await using folder = await temporaryDirectory('keel-fd-probe-');
    await chmod(folder.path, 0o755);
    const secret = join(folder.path, 'root-only.log');
    await writeFile(secret, 'before\n', { mode: 0o600 });
    // A shell redirect, as an init script or a terminal would leave one: no close-on-exec.
    const launcher = spawn(
      '/bin/bash',
      [
        '-c',
        'exec "$0" "$@" 100>>"$KEEL_TEST_LOG"',
        process.execPath,
        INHERITED_LAUNCHER,
        folder.path,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...childEnvironment(), KEEL_TEST_LOG: secret } },
    );
    const [output, errors, [code]] = await Promise.all([
      text(launcher.stdout),
      text(launcher.stderr),
      once(launcher, 'exit'),
    ]);
    assert.equal(code, 0, errors);
    const seen = JSON.parse(output) as { descriptors: Record<string, string>; wrote: string };
    assert.notEqual(seen.wrote, 'yes');
    assert.ok(
      Object.values(seen.descriptors).every((target) => !target.includes('root-only.log')),
      JSON.stringify(seen.descriptors),
    );
    assert.equal(await readFile(secret, 'utf8'), 'before\n');
  });

  it('rejects a read-only path that does not exist, leaving no cgroup', async () => {
    requireBubblewrap();
    const missingPath = join(probeDirectory, 'does-not-exist');
    const options = optionsFor({ readOnlyPaths: [PROJECT_ROOT, missingPath] });
    const error = await rejectsWithCode(launchSandboxedWorker(options), 'KEEL_INVALID_ARGUMENT');
    assert.match(error.message, /does-not-exist/);
    assert.equal(await pathExists(`/sys/fs/cgroup/memory/keel/${options.name}`), false);
  });

  it('passes on what bubblewrap says when it cannot set the sandbox up', async (context) => {
    requireBubblewrap();
    const loader = (await readdir('/lib64').catch((): string[] => []))[0];
    if (!(await lstat('/lib64').catch(() => undefined))?.isSymbolicLink() || loader === undefined) {
      context.skip('needs /lib64 to be a symlink to a folder with files, as on Debian');
      return;
    }
    // Binding a file under /lib64 makes bubblewrap create /lib64 as a folder, so it cannot
    // then make the /lib64 symlink the host has.
    const options = optionsFor({
      readOnlyPaths: [PROJECT_ROOT, probeDirectory, `/lib64/${loader}`],
    });
    // bubblewrap mounts after it reports its pid: whether it fails before or after the launch
    // has attached it to the cgroup is a race, so its message comes either way.
    let said: string;
    try {
      const worker = await launchSandboxedWorker(options);
      workers.push(worker);
      const signal = AbortSignal.timeout(10_000);
      const [stderr, [code]] = await Promise.all([
        text(worker.child.stderr!),
        once(worker.child, 'exit', { signal }),
      ]);
      assert.equal(code, 1);
      said = stderr;
    } catch (error) {
      assert.ok(isKeelError(error), String(error));
      assert.equal(error.code, 'KEEL_SANDBOX_UNAVAILABLE');
      said = error.message;
      assert.equal(await pathExists(`/sys/fs/cgroup/memory/keel/${options.name}`), false);
    }
    assert.match(said, /bwrap: .*\/lib64/);
  });

  it('stops a launch whose signal aborts while it sets the sandbox up, leaving no cgroup', async () => {
    requireBubblewrap();
    const controller = new AbortController();
    const options = optionsFor({ signal: controller.signal });
    const launching = launchSandboxedWorker(options);
    // Aborted while the launch looks its layers up (its first await): as an agent's start
    // given up on by a stop reaches it.
    controller.abort(new Error('the start was given up on'));
    const error = await rejectsWithCode(launching, 'KEEL_ABORTED');
    assert.match(error.message, /given up on/);
    assert.equal(await pathExists(`/sys/fs/cgroup/memory/keel/${options.name}`), false);
    assert.equal(await pathExists(`/sys/fs/cgroup/pids/keel/${options.name}`), false);
    await rejectsWithCode(launchSandboxedWorker(options), 'KEEL_ABORTED');
  });

  it('refuses to start without bubblewrap when the sandbox is required, leaving no cgroup', async () => {
    requireBubblewrap();
    const options = optionsFor({ report: { ...withoutBubblewrap(), cgroups: report.cgroups } });
    const error = await rejectsWithCode(launchSandboxedWorker(options), 'KEEL_SANDBOX_UNAVAILABLE');
    assert.match(error.message, /bubblewrap/);
    assert.equal(await pathExists(`/sys/fs/cgroup/memory/keel/${options.name}`), false);
  });
});

async function isAlive(pid: number): Promise<boolean> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s+Z/m.test(status);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
