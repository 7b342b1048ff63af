import { randomBytes } from 'node:crypto';
import { link, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Creates a file with complete content, or fails with `EEXIST` if the path exists — never
 * replacing anything: the data goes to a temporary file that is flushed and then hard-linked
 * to the final name (`link` refuses an existing name atomically).
 *
 * @example
 * ```ts
 * await writeFileExclusive('/home/ana/.keel/secrets.toml', text, 0o600);
 * ```
 */
export function writeFileExclusive(
  path: string,
  data: string | Uint8Array,
  mode: number,
): Promise<void> {
  return writeThroughTemporary(path, data, mode, (temporary) => link(temporary, path));
}

/**
 * Replaces (or creates) a file atomically: a reader sees the old content or the new, never
 * part of either, and the new content is on disk before it takes the name (temporary file,
 * fsync, rename, fsync of the folder).
 *
 * @example
 * ```ts
 * await replaceFileAtomically('/srv/agents/coder.signed.json', text, 0o644);
 * ```
 */
export function replaceFileAtomically(
  path: string,
  data: string | Uint8Array,
  mode: number,
): Promise<void> {
  return writeThroughTemporary(path, data, mode, (temporary) => rename(temporary, path));
}

/**
 * Writes a flushed temporary file beside `path`, `publish`es it, then flushes the folder. A
 * failure names `path` (a missing folder, one that is not a folder, no permission), never the
 * temporary file the caller did not ask for.
 */
async function writeThroughTemporary(
  path: string,
  data: string | Uint8Array,
  mode: number,
  publish: (temporary: string) => Promise<void>,
): Promise<void> {
  try {
    await writeThrough(path, data, mode, publish);
  } catch (error) {
    if (error instanceof Error && typeof (error as NodeJS.ErrnoException).path === 'string') {
      (error as NodeJS.ErrnoException).path = path;
    }
    throw error;
  }
}

async function writeThrough(
  path: string,
  data: string | Uint8Array,
  mode: number,
  publish: (temporary: string) => Promise<void>,
): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      // The umask may have taken bits off `mode`.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await publish(temporary);
  } finally {
    await rm(temporary, { force: true });
  }
  await syncDirectory(dirname(path));
}

/**
 * Flushes a directory's entries (a rename or a new file in it) to disk.
 *
 * @example
 * ```ts
 * await rename(partial, destination);
 * await syncDirectory(dirname(destination));
 * ```
 */
export async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
