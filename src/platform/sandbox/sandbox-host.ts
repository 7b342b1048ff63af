import {
  type ChildProcess,
  type IOType,
  type SpawnOptions,
  type StdioOptions,
  spawn,
} from 'node:child_process';
import { constants } from 'node:fs';
import { access, lstat, open, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { KeelError } from '../errors/keel-error.ts';
import type { SandboxLayer, SandboxReport } from './detect-sandbox.ts';
import type { SystemLibraryEntry } from './sandbox-plan.ts';

const SYSTEM_LIBRARY_PATHS = Object.freeze(['/usr/lib', '/usr/lib64', '/lib', '/lib64']);

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

export async function findSystemLibraries(): Promise<SystemLibraryEntry[]> {
  const entries = await Promise.all(SYSTEM_LIBRARY_PATHS.map(systemEntryOf));
  return entries.filter((entry) => entry !== undefined);
}

/**
 * A folder or symlink of the host as a sandbox reproduces it: a folder to bind, or a symlink
 * to recreate (merged `/usr`: `/lib -> usr/lib`). `undefined` when absent or something else.
 *
 * @example
 * ```ts
 * await systemEntryOf('/lib'); // { kind: 'symlink', path: '/lib', target: 'usr/lib' }
 * ```
 */
export async function systemEntryOf(path: string): Promise<SystemLibraryEntry | undefined> {
  try {
    const status = await lstat(path);
    if (status.isSymbolicLink()) return { kind: 'symlink', path, target: await readlink(path) };
    return status.isDirectory() ? { kind: 'directory', path } : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export async function findExecutable(
  name: string,
  searchPath: string,
): Promise<string | undefined> {
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
export async function existingPath<T>(
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

/** Whether other users may read each path, and enter it when it is a folder (o+r, o+x). */
export async function readableByOthers(paths: readonly string[]): Promise<boolean> {
  for (const path of paths) {
    const info = await stat(path);
    const wanted = info.isDirectory() ? 0o005 : 0o004;
    if ((info.mode & wanted) !== wanted) return false;
  }
  return true;
}

/** Whether every folder above and at each path lets other users pass (o+x). */
export async function reachableByOthers(paths: readonly string[]): Promise<boolean> {
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

/**
 * Spawns a worker's process and resolves once it runs, with `stdio` as given for its first
 * descriptors. Descriptors this process inherited without close-on-exec (a shell redirect, a
 * supervisor's socket) would otherwise pass into it, and on through bubblewrap and setpriv:
 * /dev/null takes their place (`ignore` would leave such a descriptor open).
 *
 * @example
 * ```ts
 * const child = await spawnWorkerProcess(node, [entry], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: {}, detached: true });
 * ```
 */
export async function spawnWorkerProcess(
  command: string,
  args: readonly string[],
  options: Omit<SpawnOptions, 'stdio'> & { readonly stdio: readonly IOType[] },
): Promise<ChildProcess> {
  const stdio: (IOType | number)[] = [...options.stdio];
  const inherited = (await inheritableDescriptors()).filter((fd) => fd >= stdio.length);
  const devNull = inherited.length > 0 ? await open('/dev/null', 'r') : undefined;
  try {
    const count = Math.max(stdio.length, ...inherited.map((fd) => fd + 1));
    // Dense: Node skips the holes of a sparse list, which would shift the descriptors.
    for (let fd = stdio.length; fd < count; fd += 1) {
      stdio[fd] = devNull !== undefined && inherited.includes(fd) ? devNull.fd : 'ignore';
    }
    const child = spawn(command, args, { ...options, stdio: stdio as StdioOptions });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => {
        child.off('error', reject);
        resolve();
      });
      child.once('error', reject);
    });
    return child;
  } finally {
    await devNull?.close();
  }
}
