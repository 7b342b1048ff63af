import { lstat, realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { KeelError } from '../../platform/errors/keel-error.ts';

/**
 * Folders that hold the host's own configuration, devices or other users' files. A program
 * module's folder is bound into its worker, so it may be none of these, nor any folder above
 * one of them; it may sit below the ones marked `below: true` (`/srv/agents/x.ts` is fine,
 * `/etc/keel/x.ts` is not).
 */
const HOST_FOLDERS: readonly { readonly path: string; readonly below: boolean }[] = [
  { path: '/etc', below: false },
  { path: '/proc', below: false },
  { path: '/sys', below: false },
  { path: '/dev', below: false },
  { path: '/boot', below: false },
  { path: '/run', below: false },
  { path: '/root', below: true },
  { path: '/home', below: true },
  { path: '/var', below: true },
  { path: '/usr', below: true },
  { path: '/opt', below: true },
  { path: '/srv', below: true },
  { path: '/tmp', below: true },
  { path: '/mnt', below: true },
  { path: '/media', below: true },
];

/** Where a program module is, once checked: its real path and the folder a worker binds. */
export interface ModuleLocation {
  /** The module's real path (symlinks resolved), which the worker imports. */
  readonly path: string;
  /** Its folder, bound read-only into the worker. */
  readonly folder: string;
}

/**
 * Resolves a manifest's `program.module` and checks that binding its folder into a worker
 * exposes nothing of Keel or the host: the real path (symlinks resolved) must be a file whose
 * folder is not, nor lies above, the data directory or a host folder such as `/etc`, and lies
 * in the data directory only under `modulesDirectory`. Relative paths are read from
 * `modulesDirectory`. Throws `KEEL_MANIFEST_INVALID` saying what to do otherwise.
 *
 * Checked at deploy and again at every launch: a file replaced by a symlink later is caught.
 *
 * @example
 * ```ts
 * const { path, folder } = await locateModule('summariser.ts', { dataDirectory, modulesDirectory });
 * ```
 */
export async function locateModule(
  module: string,
  places: { readonly dataDirectory: string; readonly modulesDirectory: string },
): Promise<ModuleLocation> {
  const named = isAbsolute(module) ? module : resolve(places.modulesDirectory, module);
  let path: string;
  try {
    path = await realpath(named);
  } catch (error) {
    throw invalid(`${named} cannot be read`, { cause: error });
  }
  if (!(await stat(path)).isFile()) throw invalid(`${path} is not a file`);
  const folder = dirname(path);
  const dataDirectory = await realpath(places.dataDirectory).catch(() =>
    resolve(places.dataDirectory),
  );
  const modulesDirectory = await realpath(places.modulesDirectory).catch(() =>
    resolve(places.modulesDirectory),
  );
  const inOwnFolder = 'give the module a folder of its own, e.g. /srv/keel-agents/<agent>/';
  if (folder === '/' || pathContains(folder, dataDirectory)) {
    throw invalid(`${path}: its folder ${folder} holds Keel's data directory; ${inOwnFolder}`);
  }
  if (pathContains(dataDirectory, folder) && !pathContains(modulesDirectory, folder)) {
    throw invalid(
      `${path} is in Keel's data directory outside ${modulesDirectory}; ${inOwnFolder}`,
    );
  }
  // One folder per agent under the modules folder, or every worker would see every module.
  if (folder === modulesDirectory) {
    throw invalid(
      `${path} sits in ${modulesDirectory} itself; give it a folder of its own there, e.g. ${join(modulesDirectory, '<agent>', basename(path))}`,
    );
  }
  for (const host of HOST_FOLDERS) {
    if (pathContains(folder, host.path) || (!host.below && pathContains(host.path, folder))) {
      throw invalid(`${path}: its folder ${folder} would expose ${host.path}; ${inOwnFolder}`);
    }
  }
  // A home folder holds its user's keys (~/.ssh, ~/.aws): never bind one whole, nor a
  // dot-folder (configuration and credentials live in those).
  if (folder === homedir() || /^\/home\/[^/]+$/.test(folder)) {
    throw invalid(`${path}: its folder ${folder} is a home folder; ${inOwnFolder}`);
  }
  if (folder.split(sep).some((part) => part.startsWith('.'))) {
    throw invalid(`${path}: its folder ${folder} is or lies in a hidden folder; ${inOwnFolder}`);
  }
  await assertNobodyElseCanSwap(path, folder);
  return { path, folder };
}

/**
 * The folder is bound by its path when the worker starts, after this check: if anyone but root
 * or Keel's own user could rename or replace a folder on the way (write access to its parent
 * without the sticky bit, or owning it), they could swap it for a link to `/` in between. So
 * every folder from `/` down must be owned by root or Keel's user, and one that others may
 * write to must be sticky (like `/tmp`), where only an entry's owner can move it.
 */
async function assertNobodyElseCanSwap(path: string, folder: string): Promise<void> {
  const trusted = new Set([0, process.getuid?.() ?? 0]);
  const parts = folder.split(sep).filter((part) => part !== '');
  for (let depth = 0; depth <= parts.length; depth += 1) {
    const current = `${sep}${parts.slice(0, depth).join(sep)}`;
    const info = await lstat(current);
    const refuse = (problem: string): KeelError =>
      invalid(`${path}: ${current} ${problem}, so it could be swapped after this check`);
    if (!info.isDirectory()) throw refuse('is not a folder');
    if (!trusted.has(info.uid))
      throw refuse(`belongs to uid ${info.uid}, not root nor Keel's user`);
    if ((info.mode & 0o022) !== 0 && (info.mode & 0o1000) === 0) {
      throw refuse(`is writable by others without the sticky bit (chmod go-w ${current})`);
    }
  }
}

/**
 * Whether `inner` is `outer` or lies below it (both absolute and resolved).
 *
 * @example
 * ```ts
 * pathContains('/srv/keel', '/srv/keel/src'); // true
 * ```
 */
export function pathContains(outer: string, inner: string): boolean {
  return inner === outer || inner.startsWith(outer === sep ? sep : `${outer}${sep}`);
}

function invalid(message: string, options: { cause?: unknown } = {}): KeelError {
  return new KeelError('KEEL_MANIFEST_INVALID', `manifest program.module: ${message}`, {
    ...options,
    details: { field: 'program.module' },
  });
}
