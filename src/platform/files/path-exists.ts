import { lstat } from 'node:fs/promises';

/**
 * Whether anything is at `path` (a symbolic link counts, even a dangling one: it is not
 * followed). Only a missing entry answers `false`; any other failure (a folder on the way that
 * may not be searched, say) is thrown, not mistaken for absence.
 *
 * @example
 * ```ts
 * if (await pathExists(keyFile)) throw alreadyExists(keyFile);
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
