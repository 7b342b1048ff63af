import { randomBytes } from 'node:crypto';
import { link, open, rm } from 'node:fs/promises';
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
export async function writeFileExclusive(
  path: string,
  data: string | Uint8Array,
  mode: number,
): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temporary, path);
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
