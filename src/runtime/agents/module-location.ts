import { realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
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
  if (folder === '/' || contains(folder, dataDirectory)) {
    throw invalid(`${path}: its folder ${folder} holds Keel's data directory; ${inOwnFolder}`);
  }
  if (contains(dataDirectory, folder) && !contains(modulesDirectory, folder)) {
    throw invalid(
      `${path} is in Keel's data directory outside ${modulesDirectory}; ${inOwnFolder}`,
    );
  }
  for (const host of HOST_FOLDERS) {
    if (contains(folder, host.path) || (!host.below && contains(host.path, folder))) {
      throw invalid(`${path}: its folder ${folder} would expose ${host.path}; ${inOwnFolder}`);
    }
  }
  // A home folder holds its user's keys (~/.ssh, ~/.aws): never bind one whole.
  if (folder === homedir() || /^\/home\/[^/]+$/.test(folder)) {
    throw invalid(`${path}: its folder ${folder} is a home folder; ${inOwnFolder}`);
  }
  return { path, folder };
}

/** Whether `inner` is `outer` or lies below it. */
function contains(outer: string, inner: string): boolean {
  return inner === outer || inner.startsWith(outer === sep ? sep : `${outer}${sep}`);
}

function invalid(message: string, options: { cause?: unknown } = {}): KeelError {
  return new KeelError('KEEL_MANIFEST_INVALID', `manifest program.module: ${message}`, {
    ...options,
    details: { field: 'program.module' },
  });
}
