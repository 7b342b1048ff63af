import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { KeelError } from '../errors/keel-error.ts';
import { pathExists } from '../files/path-exists.ts';

/**
 * What a worker cgroup may be called: it becomes a directory name under `keel/`.
 *
 * @example
 * ```ts
 * WORKER_CGROUP_NAME_PATTERN.test('agent-7'); // true
 * ```
 */
export const WORKER_CGROUP_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The folder under each controller that holds Keel's worker cgroups. */
const KEEL_FOLDER = 'keel';
/** How long {@link WorkerCgroup.dispose} waits for killed processes to leave. */
const DISPOSE_DEADLINE_MS = 2000;
const DISPOSE_POLL_MS = 20;

export interface WorkerCgroupOptions {
  /** Matches {@link WORKER_CGROUP_NAME_PATTERN}; one worker owns a name at a time. */
  readonly name: string;
  /** Memory cap (`memory.limit_in_bytes`, and the same for memory plus swap). */
  readonly memoryBytes: number;
  /** Cap on processes and threads together (`pids.max`). */
  readonly maxProcesses: number;
  /** Where the cgroup v1 controllers are mounted. Default `/sys/fs/cgroup`. */
  readonly root?: string;
  /**
   * Also a freezer cgroup, so that {@link WorkerCgroup.signal} can reach every process
   * without a pid-reuse race. Left out (and `signal` refuses) where the host has no freezer.
   */
  readonly freezer?: boolean;
}

/** The cgroup directories of a worker, one per controller (`freezer` when asked and given). */
export interface WorkerCgroupDirectories {
  readonly memory: string;
  readonly pids: string;
  readonly freezer?: string;
}

/** The memory and pids cgroups (cgroup v1) of one agent worker. */
export interface WorkerCgroup {
  readonly name: string;
  /** The cgroup directories, one per controller. */
  readonly directories: WorkerCgroupDirectories;
  /** Moves a process (all its threads) into both cgroups; its later children are born there. */
  attach(pid: number): Promise<void>;
  /** The ids of the processes in the cgroups now. */
  processes(): Promise<number[]>;
  /** How many times the kernel killed a process here for exceeding the memory cap. */
  oomKills(): Promise<number>;
  /** Sends SIGKILL to every process in the cgroups, once. */
  kill(): Promise<void>;
  /**
   * Sends `signal` to every process in the cgroup but those in `except`: the cgroup is frozen
   * first, so no process listed can exit and be reaped (its pid reused by a stranger) before
   * the signal lands; it is delivered when the cgroup thaws. Resolves with how many processes
   * were signalled. Rejects with `KEEL_SANDBOX_UNAVAILABLE` without a freezer cgroup.
   */
  signal(signal: NodeJS.Signals, except?: readonly number[]): Promise<number>;
  /**
   * Kills every process, waits (up to about 2 s) until none is left and removes both
   * directories. Idempotent. Rejects with `KEEL_INTERNAL` when processes will not leave.
   */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Either the cgroup, or why this host cannot give one. */
export type CreateWorkerCgroupResult =
  | { readonly cgroup: WorkerCgroup; readonly reason?: undefined }
  | { readonly cgroup: undefined; readonly reason: string };

/**
 * Creates `<root>/memory/keel/<name>` and `<root>/pids/keel/<name>` with the given caps. When
 * the memory cap is exceeded the kernel's OOM killer ends the largest process inside (the
 * default `memory.oom_control`), which {@link WorkerCgroup.oomKills} counts. A cgroup of the
 * same name left behind by an earlier run is emptied and created afresh.
 *
 * Resolves to `{ cgroup: undefined, reason }` when the host offers no writable memory and pids
 * controllers (not root, no delegation, cgroup v2 only). Rejects with `KEEL_INVALID_ARGUMENT`
 * for invalid options and `KEEL_INTERNAL` for unexpected file-system failures.
 *
 * @example
 * ```ts
 * const { cgroup, reason } = await createWorkerCgroup({
 *   name: 'agent-7', memoryBytes: 256 * 2 ** 20, maxProcesses: 64,
 * });
 * if (cgroup === undefined) logger.warn({ reason }, 'worker runs without cgroup limits');
 * else await cgroup.attach(child.pid);
 * ```
 */
export async function createWorkerCgroup(
  options: WorkerCgroupOptions,
): Promise<CreateWorkerCgroupResult> {
  validateWorkerCgroupOptions(options);
  const root = options.root ?? '/sys/fs/cgroup';
  const directories = {
    memory: join(root, 'memory', KEEL_FOLDER, options.name),
    pids: join(root, 'pids', KEEL_FOLDER, options.name),
  };
  const created: string[] = [];
  try {
    for (const controller of ['memory', 'pids'] as const) {
      created.push(await makeCgroup(join(root, controller), options.name));
    }
    await writeFile(join(directories.memory, 'memory.limit_in_bytes'), String(options.memoryBytes));
    await writeMemoryAndSwapLimit(directories.memory, options.memoryBytes);
    await writeFile(join(directories.pids, 'pids.max'), String(options.maxProcesses));
  } catch (error) {
    for (const directory of created) await removeDirectory(directory);
    if (isUnavailable(error)) return { cgroup: undefined, reason: messageOf(error) };
    throw new KeelError('KEEL_INTERNAL', `cannot set up cgroup ${options.name}`, {
      cause: error,
      details: { name: options.name, root },
    });
  }
  let freezer: string | undefined;
  if (options.freezer === true) {
    try {
      freezer = await makeCgroup(join(root, 'freezer'), options.name);
    } catch (error) {
      // No freezer here: the cgroup still caps; only `signal` is refused.
      if (!isUnavailable(error)) throw error;
    }
  }
  return {
    cgroup: workerCgroup(
      options.name,
      freezer === undefined ? directories : { ...directories, freezer },
    ),
  };
}

/**
 * Makes `<base>/keel/<name>`, emptying one a crashed run left. Not `mkdir({ recursive })`: on
 * kernel pseudo file systems it has been seen to spin forever (PLATFORM-NOTES.md).
 */
async function makeCgroup(base: string, name: string): Promise<string> {
  await makeDirectory(join(base, KEEL_FOLDER));
  const directory = join(base, KEEL_FOLDER, name);
  await reclaimStale(directory, base.endsWith('/freezer'));
  await mkdir(directory);
  return directory;
}

/**
 * Removes the empty worker cgroups older than `olderThanMs` that a node killed with `kill -9`
 * left behind (its workers died with it; nobody disposed of their cgroups). A cgroup with a
 * process in it is kept, and so is a young one, which another node may be about to fill.
 * Resolves with how many were removed; a host without Keel's cgroup folders has none.
 *
 * @example
 * ```ts
 * const removed = await sweepEmptyWorkerCgroups({ olderThanMs: 60_000 });
 * ```
 */
export async function sweepEmptyWorkerCgroups(options: {
  readonly olderThanMs: number;
  readonly root?: string;
  readonly now?: number;
}): Promise<number> {
  const root = options.root ?? '/sys/fs/cgroup';
  const now = options.now ?? Date.now();
  let removed = 0;
  for (const controller of ['memory', 'pids', 'freezer'] as const) {
    const folder = join(root, controller, KEEL_FOLDER);
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'EACCES') continue;
      throw error;
    }
    for (const name of names) {
      if (!WORKER_CGROUP_NAME_PATTERN.test(name)) continue;
      const directory = join(folder, name);
      try {
        const info = await stat(directory);
        if (!info.isDirectory() || now - info.ctimeMs < options.olderThanMs) continue;
        if ((await readProcesses(directory)).length > 0) continue;
        await rmdir(directory);
        removed += 1;
      } catch (error) {
        // Gone meanwhile, a process arrived (EBUSY), or another user's node made it (EACCES,
        // EPERM): none of them is this node's orphan to remove.
        if (!['ENOENT', 'EBUSY', 'EACCES', 'EPERM'].includes(errorCode(error) ?? '')) throw error;
      }
    }
  }
  return removed;
}

function validateWorkerCgroupOptions(options: WorkerCgroupOptions): void {
  if (typeof options.name !== 'string' || !WORKER_CGROUP_NAME_PATTERN.test(options.name)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `invalid worker cgroup name`, {
      details: {
        field: 'name',
        received: options.name,
        expected: String(WORKER_CGROUP_NAME_PATTERN),
      },
    });
  }
  for (const field of ['memoryBytes', 'maxProcesses'] as const) {
    const value = options[field];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `${field} must be a positive integer`, {
        details: { field, received: value },
      });
    }
  }
}

function workerCgroup(name: string, directories: WorkerCgroupDirectories): WorkerCgroup {
  let disposal: Promise<void> | undefined;
  const all = [directories.memory, directories.pids];
  if (directories.freezer !== undefined) all.push(directories.freezer);
  const processes = async (): Promise<number[]> => {
    const lists = await Promise.all(all.map(readProcesses));
    return [...new Set(lists.flat())];
  };
  const kill = async (): Promise<void> => {
    for (const pid of await processes()) killProcess(pid);
  };
  const dispose = (): Promise<void> => {
    disposal ??= removeWhenEmpty(name, directories, processes, kill);
    return disposal;
  };
  return Object.freeze({
    name,
    directories,
    async attach(pid: number): Promise<void> {
      if (!Number.isSafeInteger(pid) || pid <= 0) {
        throw new KeelError('KEEL_INVALID_ARGUMENT', 'pid must be a positive integer', {
          details: { field: 'pid', received: pid },
        });
      }
      for (const directory of all) await writeFile(join(directory, 'cgroup.procs'), String(pid));
    },
    processes,
    signal: (signal: NodeJS.Signals, except: readonly number[] = []) =>
      signalFrozen(name, directories.freezer, signal, except),
    async oomKills(): Promise<number> {
      const control = await readFile(join(directories.memory, 'memory.oom_control'), 'utf8');
      const kills = /^oom_kill (\d+)$/m.exec(control)?.[1];
      if (kills !== undefined) return Number(kills);
      // Kernels before 4.13 have no oom_kill line; hitting the cap is the closest count.
      return Number((await readFile(join(directories.memory, 'memory.failcnt'), 'utf8')).trim());
    },
    kill,
    dispose,
    [Symbol.asyncDispose]: dispose,
  });
}

/** Freezes the cgroup, signals what is in it but `except`, and thaws it (even on failure). */
async function signalFrozen(
  name: string,
  freezer: string | undefined,
  signal: NodeJS.Signals,
  except: readonly number[],
): Promise<number> {
  if (freezer === undefined) {
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      `cgroup ${name} has no freezer, so a signal could reach a reused pid; only a kill is possible`,
      { details: { name } },
    );
  }
  const state = join(freezer, 'freezer.state');
  await writeFile(state, 'FROZEN');
  try {
    const deadline = Date.now() + DISPOSE_DEADLINE_MS;
    while ((await readFile(state, 'utf8')).trim() !== 'FROZEN') {
      if (Date.now() > deadline) {
        throw new KeelError('KEEL_INTERNAL', `cgroup ${name} did not freeze`, {
          details: { name, waitedMs: DISPOSE_DEADLINE_MS },
        });
      }
      await delay(1);
    }
    let signalled = 0;
    for (const pid of await readProcesses(freezer)) {
      if (except.includes(pid)) continue;
      try {
        process.kill(pid, signal);
        signalled += 1;
      } catch (error) {
        if (errorCode(error) !== 'ESRCH') throw error;
      }
    }
    return signalled;
  } finally {
    await writeFile(state, 'THAWED');
  }
}

async function removeWhenEmpty(
  name: string,
  directories: WorkerCgroupDirectories,
  processes: () => Promise<number[]>,
  kill: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + DISPOSE_DEADLINE_MS;
  let remaining = await processes();
  while (remaining.length > 0 && Date.now() < deadline) {
    // Killing again each round also catches a process forked between reading and killing.
    await kill();
    await delay(DISPOSE_POLL_MS);
    remaining = await processes();
  }
  if (remaining.length > 0) {
    throw new KeelError('KEEL_INTERNAL', `processes of worker ${name} did not exit after SIGKILL`, {
      details: { name, pids: remaining, waitedMs: DISPOSE_DEADLINE_MS },
    });
  }
  for (const directory of [directories.memory, directories.pids, directories.freezer]) {
    if (directory !== undefined) await removeDirectory(directory);
  }
}

/** Empties and removes a cgroup a crashed run left under the same name. */
async function reclaimStale(directory: string, freezer: boolean): Promise<void> {
  if (freezer && (await pathExists(join(directory, 'freezer.state')))) {
    // A node that died while signalling leaves a frozen cgroup: thaw it, or kills never land.
    await writeFile(join(directory, 'freezer.state'), 'THAWED');
  }
  let pids = await readProcesses(directory);
  const deadline = Date.now() + DISPOSE_DEADLINE_MS;
  while (pids.length > 0 && Date.now() < deadline) {
    for (const pid of pids) killProcess(pid);
    await delay(DISPOSE_POLL_MS);
    pids = await readProcesses(directory);
  }
  await removeDirectory(directory);
}

async function removeDirectory(directory: string): Promise<void> {
  try {
    await rmdir(directory);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
}

async function makeDirectory(directory: string): Promise<void> {
  try {
    await mkdir(directory);
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error;
  }
}

/** Writes `memory.memsw.limit_in_bytes`, which exists only with swap accounting enabled. */
async function writeMemoryAndSwapLimit(directory: string, bytes: number): Promise<void> {
  try {
    await writeFile(join(directory, 'memory.memsw.limit_in_bytes'), String(bytes));
  } catch (error) {
    const code = errorCode(error);
    if (code !== 'ENOENT' && code !== 'EACCES') throw error;
  }
}

/** The processes in a cgroup; none when the cgroup is gone (removed by a reclaiming run). */
async function readProcesses(directory: string): Promise<number[]> {
  let text: string;
  try {
    text = await readFile(join(directory, 'cgroup.procs'), 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

function killProcess(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    // Already gone between listing and killing: that is the goal.
    if (errorCode(error) !== 'ESRCH') throw error;
  }
}

/** Errors that mean "this host gives Keel no cgroups here", not "something broke". */
function isUnavailable(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
