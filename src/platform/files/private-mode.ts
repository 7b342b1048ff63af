import type { Stats } from 'node:fs';
import { KeelError } from '../errors/keel-error.ts';

/**
 * Formats a mode's permission bits as four octal digits, e.g. `0644`.
 *
 * @example
 * ```ts
 * formatMode(0o100644); // '0644'
 * ```
 */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Refuses a file or directory that others can read or write, or that another user owns: it
 * holds configuration or secrets. The error says which command fixes it.
 *
 * @example
 * ```ts
 * assertPrivate(await stat(path), path, 'config file', currentUid);
 * ```
 */
export function assertPrivate(
  stats: Stats,
  path: string,
  what: string,
  uid: number | undefined,
): void {
  const directory = stats.isDirectory();
  const wanted = directory ? '0700' : '0600';
  if ((stats.mode & 0o077) !== 0) {
    throw new KeelError(
      'KEEL_CONFIG_PERMISSIONS',
      `${what} ${path} has mode ${formatMode(stats.mode)}, which lets other users ${directory ? 'into it' : 'read it'}`,
      {
        hint: `run: chmod ${wanted.slice(1)} '${path}'`,
        details: { path, mode: formatMode(stats.mode) },
      },
    );
  }
  if (uid !== undefined && stats.uid !== uid) {
    throw new KeelError(
      'KEEL_CONFIG_PERMISSIONS',
      `${what} ${path} belongs to uid ${stats.uid}, not to the user running Keel (uid ${uid})`,
      { hint: `run: chown ${uid} '${path}'`, details: { path, owner: stats.uid } },
    );
  }
}
