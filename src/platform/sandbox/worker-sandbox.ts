import { type ChildProcess, type IOType, type StdioOptions, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, lstat, open, readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join, normalize } from 'node:path';
import type { Duplex, Readable, Writable } from 'node:stream';
import { KeelError, toKeelError } from '../errors/keel-error.ts';
import type { SandboxLayer, SandboxReport } from './detect-sandbox.ts';
import { buildSeccompFilter } from './seccomp-filter.ts';
import {
  createWorkerCgroup,
  WORKER_CGROUP_NAME_PATTERN,
  type WorkerCgroup,
} from './worker-cgroup.ts';

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

/** A running, confined worker process. */
export interface SandboxedWorker {
  /** stdio: `['ignore', 'pipe', 'pipe', 'pipe', …]`; `child.pid` is bubblewrap's when used. */
  readonly child: ChildProcess;
  /** The worker's descriptor 3, for the IPC protocol. */
  readonly channel: Duplex;
  readonly applied: readonly WorkerSandboxLayer[];
  readonly missing: readonly MissingSandboxLayer[];
  /** How often the kernel killed the worker for its memory cap (0 without a memory cgroup). */
  oomKills(): Promise<number>;
  /** Kills whatever remains of the worker and removes its cgroup. Idempotent. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
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
const SYSTEM_LIBRARY_PATHS = Object.freeze(['/usr/lib', '/usr/lib64', '/lib', '/lib64']);
const FORBIDDEN_BIND_ROOTS = Object.freeze(['/proc', '/dev']);
const SECCOMP_FD = 4;
const INFO_FD = 5;
const BLOCK_FD = 6;
/** Bubblewrap needs milliseconds to set up; this only bounds a hung start. */
const START_DEADLINE_MS = 10_000;
const EXIT_WAIT_MS = 2000;

/**
 * Throws `KEEL_SANDBOX_UNAVAILABLE` unless the host offers every layer production requires of
 * agent workers, so that a production node refuses to start rather than start and then refuse
 * each worker: bubblewrap, cgroups, seccomp and `prlimit`; user namespaces when Keel is not
 * root; `setpriv` when it is (to drop the worker's uid). Landlock is optional.
 *
 * @example
 * ```ts
 * if (configuration.production) await assertProductionSandbox(report, { searchPath });
 * ```
 */
export async function assertProductionSandbox(
  report: SandboxReport,
  host: { readonly searchPath: string; readonly uid?: number },
): Promise<void> {
  const uid = host.uid ?? process.getuid?.() ?? -1;
  const layers: readonly SandboxLayer[] = [
    'bubblewrap',
    ...(uid === 0 ? [] : (['userNamespaces'] as const)),
    'cgroups',
    'seccomp',
  ];
  const missing: { layer: string; reason: string }[] = layers
    .filter((layer) => !report[layer].available)
    .map((layer) => ({ layer, reason: report[layer].detail }));
  const tools = ['prlimit', ...(uid === 0 ? ['setpriv'] : [])];
  for (const tool of tools) {
    if ((await findExecutable(tool, host.searchPath)) === undefined) {
      missing.push({ layer: tool, reason: `${tool} (util-linux) not found on the search path` });
    }
  }
  if (missing.length === 0) return;
  throw new KeelError(
    'KEEL_SANDBOX_UNAVAILABLE',
    `isolation layers missing: ${missing.map((entry) => entry.layer).join(', ')}`,
    { details: { missing } },
  );
}

/**
 * Where the util-linux helpers a worker launch uses are found: `prlimit` (open-file and core
 * limits) and `setpriv` (drops a root node's workers to the unprivileged uid). For
 * `keel doctor`.
 *
 * @example
 * ```ts
 * const { prlimit, setpriv } = await findSandboxTools('/usr/bin:/bin');
 * ```
 */
export async function findSandboxTools(
  searchPath: string,
): Promise<{ readonly prlimit: string | undefined; readonly setpriv: string | undefined }> {
  const [prlimit, setpriv] = await Promise.all([
    findExecutable('prlimit', searchPath),
    findExecutable('setpriv', searchPath),
  ]);
  return { prlimit, setpriv };
}

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

/** `/a/b/c` → `['/a', '/a/b']`; what bubblewrap would have to create before binding it. */
function ancestorsOf(path: string): string[] {
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

function validateOptions(options: WorkerSandboxOptions, uid: number): void {
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

/**
 * Starts an agent worker confined by every layer the host offers: bubblewrap (`--unshare-all`
 * so no network, a read-only view of only the system libraries, `readOnlyPaths` and node,
 * an empty environment, a private /tmp), the seccomp filter (no new processes, only AF_UNIX
 * sockets), an unprivileged uid when Keel is root, memory and pids cgroups, and `prlimit`
 * caps on open files and core dumps. The worker's descriptor 3 is `channel`.
 *
 * With bubblewrap and cgroups, the sandbox process is in the cgroups before the worker program
 * starts (bubblewrap reports its pid and waits on `--block-fd` until it is attached). Without
 * bubblewrap the worker is attached right after it starts, so what it does in that first
 * moment is charged to Keel's cgroup. Missing layers are listed in `missing` for the caller to
 * log; with `required` they are an error (`KEEL_SANDBOX_UNAVAILABLE`) instead.
 *
 * Resolves once the process runs confined. bubblewrap sets up the mounts after it reported its
 * pid, so a path it cannot bind (say, one the worker uid may not enter) shows up as an early
 * exit with bubblewrap's message on stderr: wait for the worker's first message on `channel`.
 *
 * @example
 * ```ts
 * const worker = await launchSandboxedWorker({
 *   nodePath: process.execPath, nodeArguments: ['/srv/keel/dist/worker.js'],
 *   readOnlyPaths: ['/srv/keel'], name: 'agent-7', memoryBytes: 256 * 2 ** 20,
 *   maxProcesses: 64, maxOpenFiles: 256, report, searchPath, required: production,
 * });
 * worker.channel.write(frame);
 * await worker.dispose();
 * ```
 */
export async function launchSandboxedWorker(
  options: WorkerSandboxOptions,
): Promise<SandboxedWorker> {
  const uid = process.getuid?.() ?? -1;
  validateOptions(options, uid);
  throwIfAborted(options.signal);
  const nodePath = await existingPath('nodePath', options.nodePath, (path) => realpath(path));
  for (const path of options.readOnlyPaths) await existingPath('readOnlyPaths', path, stat);
  const ownPaths = [...options.readOnlyPaths, dirname(nodePath)];
  const [othersCanRead, othersCanReach] = await Promise.all([
    readableByOthers([...ownPaths, nodePath]),
    reachableByOthers(ownPaths),
  ]);
  const [bubblewrapPath, prlimitPath, setprivPath, systemLibraries] = await Promise.all([
    findExecutable('bwrap', options.searchPath),
    findExecutable('prlimit', options.searchPath),
    findExecutable('setpriv', options.searchPath),
    findSystemLibraries(),
  ]);
  let cgroup: WorkerCgroup | undefined;
  let cgroupState: SandboxHost['cgroup'];
  if (options.report.cgroups.available) {
    const result = await createWorkerCgroup({
      name: options.name,
      memoryBytes: options.memoryBytes,
      maxProcesses: options.maxProcesses,
      ...(options.cgroupRoot === undefined ? {} : { root: options.cgroupRoot }),
    });
    cgroup = result.cgroup;
    cgroupState =
      result.cgroup === undefined ? { created: false, reason: result.reason } : { created: true };
  } else {
    cgroupState = { created: false, reason: options.report.cgroups.detail };
  }
  const host: SandboxHost = {
    othersCanRead,
    othersCanReach,
    setprivPath,
    bubblewrapPath,
    prlimitPath,
    systemLibraries,
    cgroup: cgroupState,
    uid,
    arch: process.arch,
  };
  let child: ChildProcess | undefined;
  try {
    const plan = planSandbox({ ...options, nodePath }, host);
    child = await start(plan);
    await confine(child, plan, cgroup, options);
    child.stderr?.off('readable', keepBuffered);
    return sandboxedWorker(child, plan, cgroup);
  } catch (error) {
    const failure = toKeelError(error, 'KEEL_SANDBOX_UNAVAILABLE');
    try {
      if (child !== undefined) await stop(child, cgroup);
      else await cgroup?.dispose();
    } catch (cleanupError) {
      throw new KeelError('KEEL_INTERNAL', `cleaning up after worker ${options.name} failed`, {
        cause: cleanupError,
        details: { name: options.name, launchError: failure.toJSON() },
      });
    }
    throw failure;
  }
}

async function start(plan: SandboxPlan): Promise<ChildProcess> {
  const bubblewrapped = plan.applied.includes('bubblewrap');
  const stdio: (IOType | number | undefined)[] = bubblewrapped
    ? ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe']
    : ['ignore', 'pipe', 'pipe', 'pipe'];
  // Descriptors this process inherited without close-on-exec (a shell redirect, a
  // supervisor's socket) would pass through prlimit, bubblewrap and setpriv into the worker:
  // /dev/null goes in their place (`ignore` would leave such a descriptor open).
  const inherited = (await inheritableDescriptors()).filter((fd) => fd >= stdio.length);
  const devNull = inherited.length > 0 ? await open('/dev/null', 'r') : undefined;
  try {
    const count = Math.max(stdio.length, ...inherited.map((fd) => fd + 1));
    // Dense: Node skips the holes of a sparse list, which would shift the descriptors.
    for (let fd = stdio.length; fd < count; fd += 1) {
      stdio[fd] = inherited.includes(fd) ? devNull?.fd : 'ignore';
    }
    const child: ChildProcess = spawn(plan.command, plan.args, {
      stdio: stdio as StdioOptions,
      env: {},
      // Its own process group, so that dispose can kill the group.
      detached: true,
      ...(plan.uid === undefined ? {} : { uid: plan.uid, gid: plan.uid }),
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => {
        child.off('error', reject);
        resolve();
      });
      child.once('error', reject);
    });
    // Node drains unwatched stdio when a child exits; bubblewrap's message on a failed start
    // must survive that. Data stays buffered for the caller when the start succeeds.
    child.stderr?.on('readable', keepBuffered);
    return child;
  } finally {
    await devNull?.close();
  }
}

/** This process's descriptors above 2 that a new program would inherit (no close-on-exec). */
async function inheritableDescriptors(): Promise<number[]> {
  const O_CLOEXEC = 0o2000000;
  let names: string[];
  try {
    names = await readdir('/proc/self/fdinfo');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isSafeInteger(fd) || fd <= 2) continue;
    try {
      const info = await readFile(`/proc/self/fdinfo/${name}`, 'utf8');
      const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(info)?.[1] ?? '', 8);
      if (Number.isSafeInteger(flags) && (flags & O_CLOEXEC) === 0) found.push(fd);
    } catch {
      // Closed meanwhile (the listing's own descriptor, or another task's).
    }
  }
  return found;
}

/** A `readable` listener that reads nothing: its presence alone keeps the data buffered. */
const keepBuffered = (): undefined => undefined;

async function confine(
  child: ChildProcess,
  plan: SandboxPlan,
  cgroup: WorkerCgroup | undefined,
  options: WorkerSandboxOptions,
): Promise<void> {
  const pid = child.pid as number;
  // bubblewrap closes these when it fails early, possibly with our bytes unread (ECONNRESET,
  // EPIPE). That failure reaches the caller as the worker's exit; the streams just close.
  for (const index of [SECCOMP_FD, INFO_FD, BLOCK_FD]) {
    const stream = descriptor(child, index);
    stream?.on('error', () => stream.destroy());
  }
  const seccompPipe = descriptor(child, SECCOMP_FD) as Writable | undefined;
  // bubblewrap reads the filter to end of file, after it leaves the block descriptor.
  if (seccompPipe) seccompPipe.end(plan.seccomp ?? Buffer.alloc(0));
  if (cgroup === undefined) return;
  if (!plan.holdsUntilAttached) {
    await attach(child, cgroup, [pid]);
    return;
  }
  const signal = AbortSignal.any([
    AbortSignal.timeout(START_DEADLINE_MS),
    ...(options.signal === undefined ? [] : [options.signal]),
  ]);
  const sandboxPid = await readSandboxPid(child, signal);
  await attach(child, cgroup, [pid, sandboxPid]);
  (descriptor(child, BLOCK_FD) as Writable).end('1');
}

async function attach(
  child: ChildProcess,
  cgroup: WorkerCgroup,
  pids: readonly number[],
): Promise<void> {
  try {
    for (const pid of pids) await cgroup.attach(pid);
  } catch (error) {
    // No such process: it has already exited, bubblewrap giving up on setting the sandbox up.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') throw await startFailure(child);
    throw error;
  }
}

/** Reads bubblewrap's `{"child-pid": N}` from `--info-fd`; rejects when it exits instead. */
async function readSandboxPid(child: ChildProcess, signal: AbortSignal): Promise<number> {
  const info = descriptor(child, INFO_FD) as Readable;
  const text = await new Promise<string>((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('utf8');
    };
    const finish = (outcome: () => void): void => {
      info.off('data', onData).off('end', onEnd).off('error', onError);
      signal.removeEventListener('abort', onAbort);
      outcome();
    };
    const onEnd = (): void => finish(() => resolve(received));
    const onError = (error: Error): void => finish(() => reject(error));
    const onAbort = (): void => finish(() => reject(toKeelError(signal.reason, 'KEEL_ABORTED')));
    info.on('data', onData).once('end', onEnd).once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const pid = Number(/"child-pid"\s*:\s*(\d+)/.exec(text)?.[1]);
  if (Number.isSafeInteger(pid) && pid > 0) return pid;
  throw await startFailure(child);
}

/** The error for a worker (or its bubblewrap) that exited while starting, with its stderr. */
async function startFailure(child: ChildProcess): Promise<KeelError> {
  // Listen before letting go of the buffer, or Node drains it when the exit comes in.
  const said = readSome(child.stderr, EXIT_WAIT_MS);
  child.stderr?.off('readable', keepBuffered);
  const exit = await waitForExit(child, EXIT_WAIT_MS);
  const stderr = await said;
  return new KeelError('KEEL_SANDBOX_UNAVAILABLE', `worker did not start: ${stderr.trim()}`, {
    details: { exit, stderr: stderr.slice(0, 2000) },
  });
}

function sandboxedWorker(
  child: ChildProcess,
  plan: SandboxPlan,
  cgroup: WorkerCgroup | undefined,
): SandboxedWorker {
  let disposal: Promise<void> | undefined;
  const dispose = (): Promise<void> => {
    disposal ??= stop(child, cgroup);
    return disposal;
  };
  return Object.freeze({
    child,
    channel: child.stdio[3] as Duplex,
    applied: Object.freeze([...plan.applied]),
    missing: Object.freeze([...plan.missing]),
    oomKills: (): Promise<number> => cgroup?.oomKills() ?? Promise.resolve(0),
    dispose,
    [Symbol.asyncDispose]: dispose,
  });
}

async function stop(child: ChildProcess, cgroup: WorkerCgroup | undefined): Promise<void> {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  await cgroup?.dispose();
  await waitForExit(child, EXIT_WAIT_MS);
  for (const index of [SECCOMP_FD, INFO_FD, BLOCK_FD]) descriptor(child, index)?.destroy();
}

/** The parent's end of the child's descriptor `index`, when it was piped. */
function descriptor(child: ChildProcess, index: number): Readable | Writable | undefined {
  const stdio: readonly (Readable | Writable | null | undefined)[] = child.stdio;
  return stdio[index] ?? undefined;
}

interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<ExitStatus | undefined> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(undefined);
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal });
    };
    child.once('exit', onExit);
  });
}

/** Whatever a stream yields until it ends or `timeoutMs` passes (for error messages). */
function readSome(stream: Readable | null, timeoutMs: number): Promise<string> {
  if (stream === null) return Promise.resolve('');
  return new Promise((resolve) => {
    let received = '';
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('utf8');
    };
    const finish = (): void => {
      clearTimeout(timer);
      stream.off('data', onData).off('end', finish).off('error', finish);
      resolve(received);
    };
    const timer = setTimeout(finish, timeoutMs);
    stream.on('data', onData).once('end', finish).once('error', finish);
  });
}

async function findSystemLibraries(): Promise<SystemLibraryEntry[]> {
  const entries = await Promise.all(
    SYSTEM_LIBRARY_PATHS.map(async (path): Promise<SystemLibraryEntry | undefined> => {
      try {
        const status = await lstat(path);
        if (status.isSymbolicLink()) return { kind: 'symlink', path, target: await readlink(path) };
        return status.isDirectory() ? { kind: 'directory', path } : undefined;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    }),
  );
  return entries.filter((entry) => entry !== undefined);
}

async function findExecutable(name: string, searchPath: string): Promise<string | undefined> {
  // Relative and empty entries would resolve against the working directory: never search them.
  for (const directory of searchPath.split(delimiter).filter((entry) => isAbsolute(entry))) {
    const candidate = join(directory, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch (error) {
      if (typeof (error as NodeJS.ErrnoException).code !== 'string') throw error;
    }
  }
  return undefined;
}

/** Runs `check` on `path`; a path that does not exist is an invalid option, not a host fault. */
async function existingPath<T>(
  field: string,
  path: string,
  check: (path: string) => Promise<T>,
): Promise<T> {
  try {
    return await check(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${field}: ${path} does not exist`, {
      cause: error,
      details: { field, received: path },
    });
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw toKeelError(signal.reason, 'KEEL_ABORTED');
}

/** Whether other users may read each path, and enter it when it is a folder (o+r, o+x). */
async function readableByOthers(paths: readonly string[]): Promise<boolean> {
  for (const path of paths) {
    const info = await stat(path);
    const wanted = info.isDirectory() ? 0o005 : 0o004;
    if ((info.mode & wanted) !== wanted) return false;
  }
  return true;
}

/** Whether every folder above and at each path lets other users pass (o+x). */
async function reachableByOthers(paths: readonly string[]): Promise<boolean> {
  for (const path of paths) {
    let current = path;
    for (;;) {
      const info = await stat(current);
      if (info.isDirectory() && (info.mode & 0o001) === 0) return false;
      const parent = dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
  return true;
}
