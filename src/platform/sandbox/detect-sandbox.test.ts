import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { type DetectSandboxOptions, detectSandbox, SANDBOX_LAYERS } from './detect-sandbox.ts';

const directories: Array<{ path: string } & AsyncDisposable> = [];

after(async () => {
  for (const directory of directories) await directory[Symbol.asyncDispose]();
});

/**
 * A fake host: empty `proc`, `sys` and `bin` folders to fill with only the files a test needs,
 * so that no result depends on what this machine has installed.
 */
async function fakeHost(): Promise<{
  options: DetectSandboxOptions;
  bin: string;
  put: (path: string, content: string, mode?: number) => Promise<void>;
}> {
  const directory = await temporaryDirectory();
  directories.push(directory);
  const bin = join(directory.path, 'bin');
  await Promise.all(['bin', 'proc', 'sys'].map((name) => mkdir(join(directory.path, name))));
  return {
    bin,
    options: {
      searchPath: bin,
      procDirectory: join(directory.path, 'proc'),
      sysDirectory: join(directory.path, 'sys'),
    },
    put: async (path, content, mode = 0o644) => {
      const target = join(directory.path, path);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, content, { mode });
    },
  };
}

function script(body: string): string {
  return `#!/bin/sh\n${body}\n`;
}

const FAKE_BWRAP_THAT_WORKS = script(
  'if [ "$1" = --version ]; then echo "bubblewrap 9.8.7"; exit 0; fi\nexit 0',
);

describe('detectSandbox', () => {
  it('reports every layer with a boolean and a non-empty detail on this host', async () => {
    const report = await detectSandbox({ searchPath: process.env.PATH ?? '' });
    assert.deepEqual(Object.keys(report).sort(), [...SANDBOX_LAYERS].sort());
    for (const layer of SANDBOX_LAYERS) {
      assert.equal(typeof report[layer].available, 'boolean', layer);
      assert.equal(typeof report[layer].detail, 'string', layer);
      assert.notEqual(report[layer].detail.trim(), '', layer);
    }
  });

  it('reports every layer unavailable on a host that offers nothing, each saying why', async () => {
    const host = await fakeHost();
    const report = await detectSandbox(host.options);
    for (const layer of SANDBOX_LAYERS) {
      assert.equal(report[layer].available, false, layer);
      assert.notEqual(report[layer].detail, '', layer);
    }
  });

  it('rejects with KEEL_ABORTED when the signal is already aborted', async () => {
    const host = await fakeHost();
    await rejectsWithCode(
      detectSandbox({ ...host.options, signal: AbortSignal.abort() }),
      'KEEL_ABORTED',
    );
  });

  it('rejects with KEEL_ABORTED when the signal aborts while a probe runs', async () => {
    const host = await fakeHost();
    await host.put('bin/bwrap', script('exec /bin/sleep 30'), 0o755);
    const controller = new AbortController();
    const detection = detectSandbox({
      ...host.options,
      timeoutMs: 20_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    await rejectsWithCode(detection, 'KEEL_ABORTED');
  });

  it('rejects a timeout that is not a positive integer as an invalid argument', async () => {
    const host = await fakeHost();
    await rejectsWithCode(
      detectSandbox({ ...host.options, timeoutMs: 0 }),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});

describe('detectSandbox: bubblewrap', () => {
  it('says bwrap is not found when the search path has none', async () => {
    const host = await fakeHost();
    const { bubblewrap } = await detectSandbox(host.options);
    assert.equal(bubblewrap.available, false);
    assert.match(bubblewrap.detail, /bwrap not found on PATH; install Debian package bubblewrap/);
  });

  it('reports a bwrap whose test run succeeds as available, with its version and path', async () => {
    const host = await fakeHost();
    await host.put('bin/bwrap', FAKE_BWRAP_THAT_WORKS, 0o755);
    const { bubblewrap } = await detectSandbox(host.options);
    assert.equal(bubblewrap.available, true, bubblewrap.detail);
    assert.match(bubblewrap.detail, /^bwrap 9\.8\.7 at .*\/bin\/bwrap; .*run works$/);
  });

  it('reports a bwrap whose test run fails as not available, quoting its error', async () => {
    const host = await fakeHost();
    await host.put(
      'bin/bwrap',
      script('echo "bwrap: No permissions to create new namespace" >&2\nexit 1'),
      0o755,
    );
    const { bubblewrap } = await detectSandbox(host.options);
    assert.equal(bubblewrap.available, false);
    assert.match(bubblewrap.detail, /exited with status 1: bwrap: No permissions to create new/);
  });

  it('reports a bwrap that hangs as not available once the timeout kills it', async () => {
    const host = await fakeHost();
    await host.put('bin/bwrap', script('exec /bin/sleep 30'), 0o755);
    const { bubblewrap } = await detectSandbox({ ...host.options, timeoutMs: 200 });
    assert.equal(bubblewrap.available, false);
    assert.match(bubblewrap.detail, /timed out after 200 ms/);
  });

  it('ignores a bwrap on the search path that is not executable', async () => {
    const host = await fakeHost();
    await host.put('bin/bwrap', FAKE_BWRAP_THAT_WORKS, 0o644);
    const { bubblewrap } = await detectSandbox(host.options);
    assert.equal(bubblewrap.available, false);
    assert.match(bubblewrap.detail, /not found on PATH/);
  });

  it('uses an explicit bubblewrapPath instead of searching', async () => {
    const host = await fakeHost();
    await host.put('elsewhere/bwrap', FAKE_BWRAP_THAT_WORKS, 0o755);
    const bubblewrapPath = join(dirname(host.bin), 'elsewhere/bwrap');
    const { bubblewrap } = await detectSandbox({ ...host.options, bubblewrapPath });
    assert.equal(bubblewrap.available, true, bubblewrap.detail);
    assert.ok(bubblewrap.detail.includes(bubblewrapPath), bubblewrap.detail);
  });
});

describe('detectSandbox: user namespaces', () => {
  it('reports them available when unshare --user --map-root-user succeeds', async () => {
    const host = await fakeHost();
    await host.put('proc/sys/user/max_user_namespaces', '1000\n');
    await host.put('bin/unshare', script('[ "$1" = --user ] || exit 9\nexit 0'), 0o755);
    const { userNamespaces } = await detectSandbox(host.options);
    assert.equal(userNamespaces.available, true, userNamespaces.detail);
    assert.match(userNamespaces.detail, /max_user_namespaces 1000; .*works/);
  });

  it('reports them unavailable when unshare fails', async () => {
    const host = await fakeHost();
    await host.put('proc/sys/user/max_user_namespaces', '1000\n');
    await host.put(
      'bin/unshare',
      script('echo "unshare: Operation not permitted" >&2\nexit 1'),
      0o755,
    );
    const { userNamespaces } = await detectSandbox(host.options);
    assert.equal(userNamespaces.available, false);
    assert.match(userNamespaces.detail, /Operation not permitted/);
  });

  it('reports them disabled when max_user_namespaces is 0', async () => {
    const host = await fakeHost();
    await host.put('proc/sys/user/max_user_namespaces', '0\n');
    const { userNamespaces } = await detectSandbox(host.options);
    assert.equal(userNamespaces.available, false);
    assert.match(userNamespaces.detail, /max_user_namespaces 0 \(disabled\)/);
  });

  it('reports them unavailable when unprivileged_userns_clone is 0 and unshare is missing', async () => {
    const host = await fakeHost();
    await host.put('proc/sys/user/max_user_namespaces', '1000\n');
    await host.put('proc/sys/kernel/unprivileged_userns_clone', '0\n');
    const { userNamespaces } = await detectSandbox(host.options);
    assert.equal(userNamespaces.available, false);
    assert.match(userNamespaces.detail, /unprivileged_userns_clone 0; not tried/);
  });
});

describe('detectSandbox: cgroups', () => {
  it('reports v1 memory, pids and cpu controllers as usable', async () => {
    const host = await fakeHost();
    for (const controller of ['memory', 'pids', 'cpu']) {
      await host.put(`sys/fs/cgroup/${controller}/cgroup.procs`, '');
    }
    const { cgroups } = await detectSandbox(host.options);
    assert.equal(cgroups.available, true, cgroups.detail);
    assert.match(cgroups.detail, /v1 writable: memory, pids, cpu/);
  });

  it('reports a v2 hierarchy with its controllers and a cgroup.kill in a child cgroup', async () => {
    const host = await fakeHost();
    await host.put('sys/fs/cgroup/cgroup.controllers', 'cpu io memory pids\n');
    await host.put('sys/fs/cgroup/keel/cgroup.kill', '');
    const { cgroups } = await detectSandbox(host.options);
    assert.equal(cgroups.available, true, cgroups.detail);
    assert.match(
      cgroups.detail,
      /v2 at .*\(controllers: cpu, io, memory, pids; writable; cgroup\.kill present\)/,
    );
  });

  it('finds the v2 hierarchy of a hybrid host under unified', async () => {
    const host = await fakeHost();
    await host.put('sys/fs/cgroup/unified/cgroup.controllers', '\n');
    const { cgroups } = await detectSandbox(host.options);
    assert.equal(cgroups.available, false);
    assert.match(cgroups.detail, /v2 at .*unified \(controllers: none; .*cgroup\.kill not seen\)/);
    assert.match(cgroups.detail, /no writable memory and pids controllers/);
  });

  it('reports no cgroups when no hierarchy is mounted', async () => {
    const host = await fakeHost();
    const { cgroups } = await detectSandbox(host.options);
    assert.equal(cgroups.available, false);
    assert.match(cgroups.detail, /no cgroup hierarchy found under /);
  });
});

describe('detectSandbox: seccomp and landlock', () => {
  it('reports seccomp available when status has a Seccomp line and actions are listed', async () => {
    const host = await fakeHost();
    await host.put('proc/self/status', 'Name:\tnode\nSeccomp:\t0\nSeccomp_filters:\t0\n');
    await host.put('proc/sys/kernel/seccomp/actions_avail', 'kill_process errno allow\n');
    const { seccomp } = await detectSandbox(host.options);
    assert.equal(seccomp.available, true, seccomp.detail);
    assert.equal(seccomp.detail, 'mode 0 (not filtered now); actions: kill_process errno allow');
  });

  it('reports seccomp unavailable when the kernel shows no Seccomp line', async () => {
    const host = await fakeHost();
    await host.put('proc/self/status', 'Name:\tnode\n');
    await host.put('proc/sys/kernel/seccomp/actions_avail', 'allow\n');
    const { seccomp } = await detectSandbox(host.options);
    assert.equal(seccomp.available, false);
    assert.match(seccomp.detail, /no Seccomp line/);
  });

  it('reports landlock available when it is among the active security modules', async () => {
    const host = await fakeHost();
    await host.put('sys/kernel/security/lsm', 'lockdown,capability,landlock,yama');
    const { landlock } = await detectSandbox(host.options);
    assert.equal(landlock.available, true, landlock.detail);
  });

  it('reports landlock unavailable when it is not an active module', async () => {
    const host = await fakeHost();
    await host.put('sys/kernel/security/lsm', 'capability,yama');
    const { landlock } = await detectSandbox(host.options);
    assert.equal(landlock.available, false);
    assert.match(landlock.detail, /landlock not among active modules \(capability, yama\)/);
  });

  it('reports landlock unavailable, saying why, when the module list cannot be read', async () => {
    const host = await fakeHost();
    const { landlock } = await detectSandbox(host.options);
    assert.equal(landlock.available, false);
    assert.match(landlock.detail, /cannot read .*lsm \(missing; securityfs may not be mounted\)/);
  });
});
