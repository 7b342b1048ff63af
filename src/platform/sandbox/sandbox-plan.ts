import { dirname, isAbsolute, normalize } from 'node:path';
import { KeelError } from '../errors/keel-error.ts';
import type { SandboxReport } from './detect-sandbox.ts';
import { buildSeccompFilter } from './seccomp-filter.ts';
import { WORKER_CGROUP_NAME_PATTERN } from './worker-cgroup.ts';

/**
 * The confinement layers a worker launch can apply, in the order they are reported.
 *
 * @example
 * ```ts
 * const unconfined = WORKER_SANDBOX_LAYERS.filter((layer) => !worker.applied.includes(layer));
 * ```
 */
export const WORKER_SANDBOX_LAYERS = Object.freeze([
  'bubblewrap',
  'network-namespace',
  'read-only-root',
  'unprivileged-uid',
  'cgroup-memory',
  'cgroup-pids',
  'rlimits',
  'seccomp',
] as const);

export type WorkerSandboxLayer = (typeof WORKER_SANDBOX_LAYERS)[number];

/** A layer that was not applied, and why. */
export interface MissingSandboxLayer {
  readonly layer: WorkerSandboxLayer;
  readonly reason: string;
}

export interface WorkerSandboxOptions {
  /** Absolute path of the node binary (symlinks are resolved before binding its directory). */
  readonly nodePath: string;
  /** Arguments of node, e.g. `['--max-old-space-size=192', '/abs/entry.ts']`. */
  readonly nodeArguments: readonly string[];
  /** Absolute paths bound read-only at the same place (the node binary's folder is added). */
  readonly readOnlyPaths: readonly string[];
  /** Names the cgroup (see `WORKER_CGROUP_NAME_PATTERN`) and the worker in errors. */
  readonly name: string;
  readonly memoryBytes: number;
  /** Cap on processes and threads together; Node needs about 12 threads. */
  readonly maxProcesses: number;
  /** `RLIMIT_NOFILE`, set with `prlimit` (which also sets `RLIMIT_CORE` to 0). */
  readonly maxOpenFiles: number;
  /** What `detectSandbox` found on this host. */
  readonly report: SandboxReport;
  /** Where to look for `bwrap` and `prlimit` (`PATH` syntax). */
  readonly searchPath: string;
  /** When true (production), any layer that cannot be applied is an error. */
  readonly required: boolean;
  /** The uid and gid the worker runs as when Keel runs as root. Default 65534 (`nobody`). */
  readonly unprivilegedUid?: number;
  /** Where the cgroup v1 controllers are mounted. Default `/sys/fs/cgroup`. */
  readonly cgroupRoot?: string;
  readonly signal?: AbortSignal;
}

/** One entry of the host's system library layout, reproduced inside the sandbox. */
export type SystemLibraryEntry =
  | { readonly kind: 'directory'; readonly path: string }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string };

/** What a launch found on the host, the input of {@link planSandbox} besides the options. */
export interface SandboxHost {
  readonly bubblewrapPath: string | undefined;
  readonly prlimitPath: string | undefined;
  readonly systemLibraries: readonly SystemLibraryEntry[];
  /** Whether the worker's cgroup exists, and if not why. */
  readonly cgroup:
    | { readonly created: true }
    | { readonly created: false; readonly reason: string };
  /** `setpriv` (util-linux), which drops a root bubblewrap's worker to the unprivileged uid. */
  readonly setprivPath: string | undefined;
  /** The uid Keel runs as (`process.getuid()`). */
  readonly uid: number;
  /**
   * Whether other users can read and enter each read-only path and node's folder themselves
   * (o+rx); the unprivileged uid cannot run the worker from them otherwise. Default true.
   */
  readonly othersCanRead?: boolean;
  /**
   * Whether other users can also pass every folder above them (o+x). Only a worker started
   * without bubblewrap needs this: bubblewrap binds the paths as root. Default true.
   */
  readonly othersCanReach?: boolean;
  /** `process.arch`; decides whether there is a seccomp filter. */
  readonly arch: string;
}

/** How to start a worker: the command line, what it applies, and what the launch must do. */
export interface SandboxPlan {
  readonly command: string;
  readonly args: readonly string[];
  readonly applied: readonly WorkerSandboxLayer[];
  readonly missing: readonly MissingSandboxLayer[];
  /** The filter to write into descriptor 4, which bubblewrap reads with `--seccomp 4`. */
  readonly seccomp: Buffer | undefined;
  /** The uid and gid to spawn as, or `undefined` to keep Keel's. */
  readonly uid: number | undefined;
  /**
   * True when bubblewrap reports its sandbox pid on descriptor 5 (`--info-fd`) and then waits
   * on descriptor 6 (`--block-fd`), so the launch can put it into the cgroup before the
   * worker program exists.
   */
  readonly holdsUntilAttached: boolean;
}

const DEFAULT_UNPRIVILEGED_UID = 65534;

const FORBIDDEN_BIND_ROOTS = Object.freeze(['/proc', '/dev']);

export const SECCOMP_FD = 4;

export const INFO_FD = 5;

export const BLOCK_FD = 6;

/**
 * Decides how to start a worker on a host: the `bwrap` (or, without it, plain `node`) command
 * line behind a `prlimit` prefix, which layers that applies and which are missing. Pure.
 * Throws `KEEL_INVALID_ARGUMENT` for invalid options, and `KEEL_SANDBOX_UNAVAILABLE` naming
 * the missing layers when `options.required` is set and any is missing.
 *
 * @example
 * ```ts
 * const plan = planSandbox(options, host);
 * plan.command; // '/usr/bin/prlimit'
 * plan.args;    // ['--nofile=256:256', '--core=0:0', '--', '/usr/bin/bwrap', '--unshare-all', …]
 * ```
 */
export function planSandbox(options: WorkerSandboxOptions, host: SandboxHost): SandboxPlan {
  validateOptions(options, host.uid);
  const applied: WorkerSandboxLayer[] = [];
  const missing: MissingSandboxLayer[] = [];
  const bubblewrap = options.report.bubblewrap.available ? host.bubblewrapPath : undefined;
  if (bubblewrap !== undefined) {
    applied.push('bubblewrap', 'network-namespace', 'read-only-root');
  } else {
    const reason = options.report.bubblewrap.available
      ? `bwrap not found on searchPath ${options.searchPath}`
      : options.report.bubblewrap.detail;
    missing.push({ layer: 'bubblewrap', reason });
    for (const layer of ['network-namespace', 'read-only-root'] as const) {
      missing.push({ layer, reason: 'needs bubblewrap' });
    }
  }
  const privileged = bubblewrap !== undefined && host.uid === 0;
  const unprivilegedUid = options.unprivilegedUid ?? DEFAULT_UNPRIVILEGED_UID;
  const uidProblem = unprivilegedUidProblem(host, bubblewrap !== undefined);
  if (uidProblem === undefined) applied.push('unprivileged-uid');
  else missing.push({ layer: 'unprivileged-uid', reason: uidProblem });
  const dropUid = host.uid === 0;
  // Root runs bubblewrap itself, which binds as root and has setpriv drop the worker's uid;
  // only a worker without bubblewrap is spawned as the unprivileged uid directly.
  const uid = dropUid && !privileged ? unprivilegedUid : undefined;
  const setpriv =
    dropUid && privileged ? { path: host.setprivPath as string, uid: unprivilegedUid } : undefined;
  if (host.cgroup.created) applied.push('cgroup-memory', 'cgroup-pids');
  else {
    missing.push({ layer: 'cgroup-memory', reason: host.cgroup.reason });
    missing.push({ layer: 'cgroup-pids', reason: host.cgroup.reason });
  }
  if (host.prlimitPath !== undefined) applied.push('rlimits');
  else missing.push({ layer: 'rlimits', reason: 'prlimit (util-linux) not found on searchPath' });
  let seccomp: Buffer | undefined;
  if (bubblewrap === undefined) missing.push({ layer: 'seccomp', reason: 'needs bubblewrap' });
  else if (!options.report.seccomp.available) {
    missing.push({ layer: 'seccomp', reason: options.report.seccomp.detail });
  } else {
    seccomp = buildSeccompFilter(host.arch);
    if (seccomp === undefined) {
      missing.push({ layer: 'seccomp', reason: `no seccomp filter for ${host.arch} yet` });
    } else applied.push('seccomp');
  }
  if (options.required && missing.length > 0) {
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      `cannot confine worker ${options.name}; missing: ${missing.map((entry) => entry.layer).join(', ')}`,
      { details: { name: options.name, missing } },
    );
  }
  if (uidProblem !== undefined) {
    // Whatever else may be missing outside production, agent code never runs as root.
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      `will not run worker ${options.name} as root: ${uidProblem}`,
      { details: { name: options.name, missing } },
    );
  }
  const holdsUntilAttached = bubblewrap !== undefined && host.cgroup.created;
  const program =
    bubblewrap === undefined
      ? [options.nodePath, ...options.nodeArguments]
      : [
          bubblewrap,
          ...bubblewrapArguments(options, host, { seccomp, holdsUntilAttached, setpriv }),
        ];
  const [command = options.nodePath, ...args] =
    host.prlimitPath === undefined
      ? program
      : [
          host.prlimitPath,
          `--nofile=${options.maxOpenFiles}:${options.maxOpenFiles}`,
          '--core=0:0',
          '--',
          ...program,
        ];
  return {
    command,
    args,
    applied: sortByLayer(applied, (layer) => layer),
    missing: sortByLayer(missing, (entry) => entry.layer),
    seccomp,
    uid,
    holdsUntilAttached,
  };
}

/** Why the worker would keep Keel's uid (root), or `undefined` when it can drop it. */
function unprivilegedUidProblem(host: SandboxHost, bubblewrapped: boolean): string | undefined {
  if (host.uid !== 0) return undefined;
  if (host.othersCanRead === false) {
    return 'a read-only path or node itself is not readable by other users (chmod o+rX it)';
  }
  if (bubblewrapped) {
    return host.setprivPath === undefined
      ? 'setpriv (util-linux) not found on searchPath'
      : undefined;
  }
  return host.othersCanReach === false
    ? 'a read-only path sits in a folder other users cannot enter (chmod o+x its parents)'
    : undefined;
}

interface BubblewrapExtras {
  readonly seccomp: Buffer | undefined;
  readonly holdsUntilAttached: boolean;
  /** When root runs bubblewrap: setpriv drops the worker to `uid` before node starts. */
  readonly setpriv: { readonly path: string; readonly uid: number } | undefined;
}

function bubblewrapArguments(
  options: WorkerSandboxOptions,
  host: SandboxHost,
  extras: BubblewrapExtras,
): string[] {
  const args: string[] = [];
  if (host.uid === 0) {
    // Root needs no user namespace: bubblewrap mounts with its own privileges, so paths in
    // folders only root may enter bind fine, and the worker runs as a real host uid.
    args.push('--unshare-ipc', '--unshare-pid', '--unshare-net', '--unshare-uts');
    args.push('--unshare-cgroup-try');
  } else args.push('--unshare-all');
  args.push('--die-with-parent', '--new-session', '--clearenv', '--cap-drop', 'ALL');
  if (extras.setpriv !== undefined) {
    // Only for setpriv, which empties the bounding set (CAP_SETPCAP) and then drops the uid,
    // which clears the rest: node starts with no capability in any set.
    for (const capability of ['CAP_SETUID', 'CAP_SETGID', 'CAP_SETPCAP']) {
      args.push('--cap-add', capability);
    }
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp');
  // Binds after the tmpfs, so a read-only path under /tmp shows through it.
  const symlinks = host.systemLibraries.filter((entry) => entry.kind === 'symlink');
  const binds = [
    ...host.systemLibraries
      .filter((entry) => entry.kind === 'directory')
      .map((entry) => entry.path),
    ...options.readOnlyPaths,
    dirname(options.nodePath),
    ...(extras.setpriv === undefined ? [] : [extras.setpriv.path]),
  ];
  const created = new Set<string>();
  for (const path of outermostPaths(binds)) {
    // bubblewrap creates missing parents 0700 when root runs it: make them passable first.
    for (const parent of ancestorsOf(path)) {
      if (!created.has(parent)) args.push('--perms', '0755', '--dir', parent);
      created.add(parent);
    }
    args.push('--ro-bind', path, path);
  }
  for (const link of symlinks) args.push('--symlink', link.target, link.path);
  args.push('--chdir', '/tmp');
  if (extras.seccomp !== undefined) args.push('--seccomp', String(SECCOMP_FD));
  if (extras.holdsUntilAttached) {
    args.push('--info-fd', String(INFO_FD), '--block-fd', String(BLOCK_FD));
  }
  args.push('--');
  if (extras.setpriv !== undefined) {
    const { path, uid } = extras.setpriv;
    args.push(path, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups');
    args.push('--inh-caps=-all', '--bounding-set=-all', '--');
  }
  args.push(options.nodePath, ...options.nodeArguments);
  return args;
}

/**
 * `/a/b/c` → `['/a', '/a/b']`; what bubblewrap would have to create before binding it.
 *
 * @example
 * ```ts
 * ancestorsOf('/srv/keel/app'); // ['/srv', '/srv/keel']
 * ```
 */
export function ancestorsOf(path: string): string[] {
  const parts = path.split('/').filter((part) => part !== '');
  return parts.slice(0, -1).map((_, index) => `/${parts.slice(0, index + 1).join('/')}`);
}

/** Drops duplicates and paths inside another path of the list; parents come first. */
function outermostPaths(paths: readonly string[]): string[] {
  const kept: string[] = [];
  for (const path of [...new Set(paths)].sort((left, right) => left.length - right.length)) {
    if (!kept.some((outer) => path === outer || path.startsWith(`${outer}/`))) kept.push(path);
  }
  return kept;
}

function sortByLayer<T>(items: readonly T[], layerOf: (item: T) => WorkerSandboxLayer): T[] {
  const rank = (item: T): number => WORKER_SANDBOX_LAYERS.indexOf(layerOf(item));
  return [...items].sort((left, right) => rank(left) - rank(right));
}

export function validateOptions(options: WorkerSandboxOptions, uid: number): void {
  const invalid = (field: string, message: string, received: unknown): KeelError =>
    new KeelError('KEEL_INVALID_ARGUMENT', `${field} ${message}`, {
      details: { field, received },
    });
  if (!isAbsolute(options.nodePath))
    throw invalid('nodePath', 'must be absolute', options.nodePath);
  if (typeof options.name !== 'string' || !WORKER_CGROUP_NAME_PATTERN.test(options.name)) {
    throw invalid('name', `must match ${WORKER_CGROUP_NAME_PATTERN}`, options.name);
  }
  if (!options.nodeArguments.every((argument) => typeof argument === 'string')) {
    throw invalid('nodeArguments', 'must be strings', options.nodeArguments);
  }
  for (const path of options.readOnlyPaths) {
    const forbidden =
      path === '/' ||
      path === '/tmp' ||
      FORBIDDEN_BIND_ROOTS.some((root) => path === root || path.startsWith(`${root}/`));
    if (!isAbsolute(path) || normalize(path) !== path || path.endsWith('/') || forbidden) {
      throw invalid(
        'readOnlyPaths',
        'must hold absolute, normalised paths other than /, /tmp and those under /proc or /dev',
        path,
      );
    }
  }
  for (const field of ['memoryBytes', 'maxProcesses', 'maxOpenFiles'] as const) {
    const value = options[field];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw invalid(field, 'must be a positive integer', value);
    }
  }
  const wanted = options.unprivilegedUid;
  if (wanted !== undefined) {
    if (!Number.isSafeInteger(wanted) || wanted <= 0) {
      throw invalid('unprivilegedUid', 'must be a positive integer', wanted);
    }
    if (uid !== 0 && wanted !== uid) {
      throw invalid('unprivilegedUid', 'can only be switched to when Keel runs as root', wanted);
    }
  }
}
