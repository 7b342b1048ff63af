import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { isKeelError } from '../errors/keel-error.ts';
import {
  runSandboxedCommand,
  type SandboxedCommandOptions,
  startSandboxedCommand,
} from './command-sandbox.ts';
import { detectSandbox, type SandboxReport } from './detect-sandbox.ts';

const searchPath = '/usr/local/bin:/usr/bin:/bin';
const UNPRIVILEGED = 65534;

describe('runSandboxedCommand', { timeout: 60_000 }, () => {
  let report: SandboxReport;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  let workspace: string;
  const options = (argv: string[], extra: Partial<SandboxedCommandOptions> = {}) => ({
    argv,
    workspace,
    network: false,
    timeoutMs: 10_000,
    maxOutputBytes: 65_536,
    memoryBytes: 512 * 1024 * 1024,
    maxProcesses: 128,
    report,
    searchPath,
    required: true,
    ...extra,
  });

  before(async () => {
    report = await detectSandbox({ searchPath });
    directory = await temporaryDirectory('keel-command-');
    await chmod(directory.path, 0o755);
    workspace = join(directory.path, 'workspace');
    await mkdir(workspace);
    if (process.getuid?.() === 0) await chown(workspace, UNPRIVILEGED, UNPRIVILEGED);
  });
  after(async () => {
    await directory[Symbol.asyncDispose]();
  });

  it('runs a command with every layer applied, as an unprivileged user in the workspace', async () => {
    const result = await runSandboxedCommand(options(['id', '-u']));
    assert.equal(result.exitCode, 0);
    assert.notEqual(result.stdout.trim(), '0');
    assert.deepEqual(result.missing, []);
    for (const layer of ['bubblewrap', 'network-namespace', 'unprivileged-uid', 'seccomp']) {
      assert.ok(result.applied.includes(layer as never), layer);
    }
    const written = await runSandboxedCommand(options(['touch', 'made-here']));
    assert.equal(written.exitCode, 0, written.stderr);
    assert.deepEqual(await readdir(workspace), ['made-here']);
  });

  it('shows no user database, no secrets of the host and an empty environment', async () => {
    const passwd = await runSandboxedCommand(options(['cat', '/etc/passwd']));
    assert.notEqual(passwd.exitCode, 0);
    assert.match(passwd.stderr, /No such file/);
    const environment = await runSandboxedCommand(options(['env']));
    const names = environment.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('=')[0])
      .sort();
    assert.deepEqual(names, [
      'GIT_CONFIG_NOSYSTEM',
      'GIT_TERMINAL_PROMPT',
      'HOME',
      'LANG',
      'PAGER',
      'PATH',
      // bubblewrap sets PWD when it changes folder.
      'PWD',
      'TMPDIR',
    ]);
  });

  it('gives a command no network unless it is granted', async () => {
    const script =
      "require('node:net').connect(4222, '127.0.0.1').on('error', (e) => { console.log(e.code); process.exit(3); }).on('connect', () => process.exit(0));";
    const refused = await runSandboxedCommand(options(['node', '-e', script]));
    assert.equal(refused.exitCode, 3, refused.stderr);
    assert.match(refused.stdout, /EAFNOSUPPORT|ENETUNREACH|ECONNREFUSED/);
  });

  it('kills the whole sandbox at the deadline, leaving no process behind', async () => {
    const result = await runSandboxedCommand(
      options(['sh', '-c', 'sleep 30 & sleep 31'], { timeoutMs: 300 }),
    );
    assert.equal(result.timedOut, true);
    const { stdout } = await promisify(execFile)('ps', ['-eo', 'args']);
    // Whole lines only: other processes on the machine (a shell's `sleep 300`) must not count.
    assert.doesNotMatch(stdout, /^sleep 3[01]$/m);
  });

  it('keeps at most maxOutputBytes of output and counts the rest', async () => {
    const result = await runSandboxedCommand(
      options(['head', '-c', '100000', '/dev/zero'], { maxOutputBytes: 1000 }),
    );
    assert.equal(result.truncated, true);
    assert.equal(result.stdoutBytes, 100_000);
    assert.equal(Buffer.byteLength(result.stdout), 1000);
  });

  it('ends a command that takes more memory than its cap', async () => {
    const hog = 'const kept = []; for (;;) kept.push(Buffer.alloc(1 << 20, 1));';
    const result = await runSandboxedCommand(
      options(['node', '-e', hog], { memoryBytes: 96 * 1024 * 1024 }),
    );
    assert.notEqual(result.exitCode, 0);
    // The kernel's OOM killer (SIGKILL, reported by the sandbox's init as 128 + 9), or V8
    // giving up on an allocation it cannot get.
    assert.ok(
      result.signal === 'SIGKILL' ||
        result.exitCode === 137 ||
        /out of memory|allocation failed/i.test(result.stderr),
      `ended by ${result.signal ?? result.exitCode}: ${result.stderr.slice(0, 300)}`,
    );
  });

  it('stops a command from starting more processes than its cap', async () => {
    const script =
      'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 3 & done; wait';
    const result = await runSandboxedCommand(
      options(['sh', '-c', script], { maxProcesses: 8, timeoutMs: 10_000 }),
    );
    assert.match(result.stderr, /fork|Resource temporarily unavailable/i);
  });

  it('refuses to run a command as root in a workspace that root owns', async (context) => {
    if (process.getuid?.() !== 0) {
      context.diagnostic('runs only where Keel is root');
      return;
    }
    const owned = join(directory.path, 'root-owned');
    await mkdir(owned);
    await assert.rejects(
      runSandboxedCommand(options(['true'], { workspace: owned })),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_SANDBOX_UNAVAILABLE',
    );
  });

  it('starts a long-running command whose signals reach it and its children, not the sandbox', async () => {
    // The shell traps TERM to say so; its child sleeps. Both must get the signal.
    const script = "trap 'echo got-term; exit 7' TERM; sleep 37 & wait";
    const lines: string[] = [];
    const started = await startSandboxedCommand({
      ...options(['sh', '-c', script], { timeoutMs: 20_000 }),
      onOutput: (_stream, chunk) => lines.push(chunk.toString('utf8')),
    });
    assert.equal(started.ended, false);
    // Wait until the shell has set its trap and started the sleep (the process list says so).
    const ps = promisify(execFile);
    for (let tries = 0; tries < 200; tries += 1) {
      const { stdout } = await ps('ps', ['-eo', 'args']);
      // The sleep itself, not the shell whose script names it.
      if (stdout.split('\n').some((line) => line.startsWith('sleep 37'))) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok((await started.signal('SIGTERM')) >= 2, 'the shell and its sleep got SIGTERM');
    const result = await started.result;
    assert.equal(result.exitCode, 7, result.stderr);
    assert.match(lines.join(''), /got-term/);
    assert.equal(started.ended, true);
    assert.equal(await started.signal('SIGTERM'), 0);
    const { stdout } = await ps('ps', ['-eo', 'args']);
    assert.doesNotMatch(stdout, /^sleep 37$/m);
  });

  it('without bubblewrap, signals the command it spawned and its children through the cgroup', async () => {
    // Without bubblewrap nothing holds the command until it is in its cgroup: a child forked
    // in its first moments escapes it. This one starts its child later.
    const script = "trap 'echo got-term; exit 7' TERM; sleep 0.3; sleep 38 & wait";
    const lines: string[] = [];
    const started = await startSandboxedCommand({
      ...options(['sh', '-c', script], {
        timeoutMs: 20_000,
        required: false,
        report: { ...report, bubblewrap: { available: false, detail: 'left out by this test' } },
      }),
      onOutput: (_stream, chunk) => lines.push(chunk.toString('utf8')),
    });
    assert.ok(!started.applied.includes('bubblewrap'));
    const ps = promisify(execFile);
    for (let tries = 0; tries < 200; tries += 1) {
      const { stdout } = await ps('ps', ['-eo', 'args']);
      // The sleep itself, not the shell whose script names it.
      if (stdout.split('\n').some((line) => line.startsWith('sleep 38'))) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(await started.signal('SIGTERM'), 2, "the shell (Keel's child) and its sleep");
    const result = await started.result;
    assert.equal(result.exitCode, 7, result.stderr);
    assert.match(lines.join(''), /got-term/);
    const { stdout } = await ps('ps', ['-eo', 'args']);
    assert.doesNotMatch(stdout, /^sleep 38$/m);
  });

  it('kills a started command with SIGKILL', async () => {
    const started = await startSandboxedCommand(options(['sleep', '29'], { timeoutMs: 20_000 }));
    assert.equal(await started.signal('SIGKILL'), 1);
    const result = await started.result;
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, 'SIGKILL');
  });
});
