import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { pathExists } from '../files/path-exists.ts';
import { createWorkerCgroup, sweepEmptyWorkerCgroups, type WorkerCgroup } from './worker-cgroup.ts';

const ROOT = '/sys/fs/cgroup';
const MIB = 2 ** 20;
const children: ChildProcess[] = [];
const cgroups: WorkerCgroup[] = [];

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const cgroup of cgroups) await cgroup.dispose();
});

/** These tests use the real cgroup v1 hierarchy: they fail, not skip, on a host without it. */
async function requireWritableCgroups(): Promise<void> {
  for (const controller of ['memory', 'pids']) {
    await access(join(ROOT, controller, 'cgroup.procs'), constants.W_OK).catch((error: unknown) => {
      throw new Error(
        `cgroup v1 ${controller} controller not writable at ${ROOT}/${controller}: ` +
          'these tests need root on a host with cgroup v1 memory and pids controllers',
        { cause: error },
      );
    });
  }
}

function uniqueName(label: string): string {
  return `test-${label}-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
}

async function create(
  label: string,
  memoryBytes = 64 * MIB,
  freezer = false,
): Promise<WorkerCgroup> {
  await requireWritableCgroups();
  const result = await createWorkerCgroup({
    name: uniqueName(label),
    memoryBytes,
    maxProcesses: 32,
    freezer,
  });
  assert.ok(result.cgroup !== undefined, `no cgroup: ${result.reason}`);
  cgroups.push(result.cgroup);
  return result.cgroup;
}

/** A node process that waits for a line on stdin before it runs `program`. */
function startIdle(program = ''): ChildProcess {
  const child = spawn(
    process.execPath,
    ['-e', `process.stdin.once('data', () => { ${program} }); setInterval(() => {}, 1000);`],
    { stdio: ['pipe', 'ignore', 'ignore'], env: {} },
  );
  children.push(child);
  return child;
}

describe('createWorkerCgroup', () => {
  it('creates memory and pids cgroups with the given caps', async () => {
    const cgroup = await create('caps', 48 * MIB);
    assert.equal(cgroup.directories.memory, join(ROOT, 'memory/keel', cgroup.name));
    assert.equal(cgroup.directories.pids, join(ROOT, 'pids/keel', cgroup.name));
    const read = (directory: string, file: string): Promise<string> =>
      readFile(join(directory, file), 'utf8').then((content) => content.trim());
    assert.equal(await read(cgroup.directories.memory, 'memory.limit_in_bytes'), String(48 * MIB));
    assert.equal(await read(cgroup.directories.pids, 'pids.max'), '32');
    assert.equal(await cgroup.oomKills(), 0);
  });

  it('attaches a process, lists it and kills it', async () => {
    const cgroup = await create('attach');
    const child = startIdle();
    await once(child, 'spawn');
    await cgroup.attach(child.pid!);
    assert.deepEqual(await cgroup.processes(), [child.pid]);
    const memberships = await readFile(`/proc/${child.pid}/cgroup`, 'utf8');
    assert.match(memberships, new RegExp(`:memory:.*/keel/${cgroup.name}$`, 'm'));
    assert.match(memberships, new RegExp(`:pids:.*/keel/${cgroup.name}$`, 'm'));
    const exited = once(child, 'exit');
    await cgroup.kill();
    assert.equal((await exited)[1], 'SIGKILL');
  });

  it('counts an OOM kill when a process exceeds the memory cap', async () => {
    const cgroup = await create('oom', 64 * MIB);
    const child = startIdle('const kept = []; for (;;) kept.push(Buffer.alloc(1 << 20, 1));');
    await once(child, 'spawn');
    await cgroup.attach(child.pid!);
    child.stdin?.write('go\n');
    const [, signal] = await once(child, 'exit');
    assert.equal(signal, 'SIGKILL');
    assert.ok((await cgroup.oomKills()) >= 1);
  });

  it('dispose kills what is left and removes both directories, and is idempotent', async () => {
    const cgroup = await create('dispose');
    const child = startIdle();
    await once(child, 'spawn');
    await cgroup.attach(child.pid!);
    const exited = once(child, 'exit');
    await Promise.all([cgroup.dispose(), cgroup.dispose()]);
    await exited;
    assert.equal(await pathExists(cgroup.directories.memory), false);
    assert.equal(await pathExists(cgroup.directories.pids), false);
    await cgroup.dispose();
  });

  it('signals every process but the excepted ones through a frozen cgroup, then thaws it', async () => {
    const cgroup = await create('signal', 64 * MIB, true);
    assert.ok(cgroup.directories.freezer !== undefined, 'this host has a freezer controller');
    const spared = startIdle();
    const target = startIdle();
    await Promise.all([once(spared, 'spawn'), once(target, 'spawn')]);
    await cgroup.attach(spared.pid!);
    await cgroup.attach(target.pid!);
    const exited = once(target, 'exit');
    assert.equal(await cgroup.signal('SIGTERM', [spared.pid!]), 1);
    assert.equal((await exited)[1], 'SIGTERM');
    assert.equal(spared.exitCode, null);
    const state = await readFile(join(cgroup.directories.freezer, 'freezer.state'), 'utf8');
    assert.equal(state.trim(), 'THAWED');
    await cgroup.dispose();
    assert.equal(await pathExists(cgroup.directories.freezer), false);
  });

  it('refuses to signal without a freezer cgroup', async () => {
    const cgroup = await create('no-freezer');
    assert.equal(cgroup.directories.freezer, undefined);
    await rejectsWithCode(cgroup.signal('SIGTERM'), 'KEEL_SANDBOX_UNAVAILABLE');
  });

  it('reclaims a cgroup of the same name left behind, killing what ran in it', async () => {
    const stale = await create('stale');
    const child = startIdle();
    await once(child, 'spawn');
    await stale.attach(child.pid!);
    const exited = once(child, 'exit');
    const fresh = await createWorkerCgroup({
      name: stale.name,
      memoryBytes: MIB * 32,
      maxProcesses: 8,
    });
    assert.ok(fresh.cgroup !== undefined, fresh.reason);
    cgroups.push(fresh.cgroup);
    assert.equal((await exited)[1], 'SIGKILL');
    assert.deepEqual(await fresh.cgroup.processes(), []);
    const limit = await readFile(join(fresh.cgroup.directories.pids, 'pids.max'), 'utf8');
    assert.equal(limit.trim(), '8');
  });

  it('reports why when the host has no cgroup controllers there', async () => {
    await using directory = await temporaryDirectory();
    const result = await createWorkerCgroup({
      name: 'nowhere',
      memoryBytes: MIB * 64,
      maxProcesses: 8,
      root: directory.path,
    });
    assert.equal(result.cgroup, undefined);
    assert.match(result.reason ?? '', /ENOENT/);
  });

  it('rejects names that are not safe directory names, and caps that are not positive', async () => {
    for (const name of ['', '../escape', 'Upper', '-lead', 'a/b', 'x'.repeat(64)]) {
      await rejectsWithCode(
        createWorkerCgroup({ name, memoryBytes: MIB, maxProcesses: 1 }),
        'KEEL_INVALID_ARGUMENT',
      );
    }
    await rejectsWithCode(
      createWorkerCgroup({ name: 'ok', memoryBytes: 0, maxProcesses: 1 }),
      'KEEL_INVALID_ARGUMENT',
    );
    await rejectsWithCode(
      createWorkerCgroup({ name: 'ok', memoryBytes: MIB, maxProcesses: 1.5 }),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});

describe('sweepEmptyWorkerCgroups', () => {
  // A tree shaped like the cgroup mount: sweeping the real one would race other tests' cgroups.
  it('removes old empty worker cgroups and keeps busy, young and foreign ones', async () => {
    await using root = await temporaryDirectory('keel-cgroup-sweep-');
    for (const controller of ['memory', 'pids']) {
      const keel = join(root.path, controller, 'keel');
      await mkdir(join(keel, 'orphan-1a2b'), { recursive: true });
      await mkdir(join(keel, 'busy-3c4d'));
      await writeFile(join(keel, 'busy-3c4d', 'cgroup.procs'), '4242\n');
      await mkdir(join(keel, 'Not A Worker'));
    }
    const young = await sweepEmptyWorkerCgroups({ olderThanMs: 60_000, root: root.path });
    assert.equal(young, 0);
    const later = Date.now() + 120_000;
    const removed = await sweepEmptyWorkerCgroups({
      olderThanMs: 60_000,
      root: root.path,
      now: later,
    });
    assert.equal(removed, 2);
    for (const controller of ['memory', 'pids']) {
      const keel = join(root.path, controller, 'keel');
      assert.equal(await pathExists(join(keel, 'orphan-1a2b')), false);
      assert.equal(await pathExists(join(keel, 'busy-3c4d')), true);
      assert.equal(await pathExists(join(keel, 'Not A Worker')), true);
    }
  });

  it('finds nothing to do on a host without the folders', async () => {
    await using root = await temporaryDirectory('keel-cgroup-sweep-');
    assert.equal(await sweepEmptyWorkerCgroups({ olderThanMs: 0, root: root.path }), 0);
  });
});
