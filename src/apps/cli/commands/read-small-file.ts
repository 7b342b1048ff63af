import type { Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { fileSystemError } from '../../../platform/files/file-system-error.ts';

/**
 * Reads a file of at most `limit` bytes through one descriptor, checking it as `check` says:
 * a path that is not a regular file (a folder, `/dev/zero`) or is too large is refused before
 * anything is read (`KEEL_INVALID_ARGUMENT`, `KEEL_PAYLOAD_TOO_LARGE`); one that cannot be opened
 * is typed as {@link fileSystemError} types it (`KEEL_NOT_FOUND` when missing), with the reason.
 *
 * @example
 * ```ts
 * const text = await readSmallFile('agents/coder.yaml', 'manifest', MAX_MANIFEST_BYTES);
 * ```
 */
export async function readSmallFile(
  path: string,
  what: string,
  limit: number,
  check?: (stats: Stats) => void,
): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unknown';
    // Missing is KEEL_NOT_FOUND; no permission, or a file where a folder should be, is not.
    const typed = fileSystemError(error);
    throw new KeelError(
      typed?.code ?? 'KEEL_NOT_FOUND',
      `the ${what} ${path} cannot be read (${reason})`,
      { cause: error, details: { path, reason }, hint: typed?.hint ?? 'check the path' },
    );
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `the ${what} ${path} is not a file`, {
        details: { path },
      });
    }
    check?.(stats);
    if (stats.size > limit) {
      throw new KeelError(
        'KEEL_PAYLOAD_TOO_LARGE',
        `the ${what} ${path} is ${stats.size} bytes; the limit is ${limit}`,
        { details: { path, size: stats.size, limit } },
      );
    }
    const text = await handle.readFile('utf8');
    // It may have grown since: what was read is held to the limit too.
    if (Buffer.byteLength(text) > limit) {
      throw new KeelError(
        'KEEL_PAYLOAD_TOO_LARGE',
        `the ${what} ${path} is larger than ${limit} bytes`,
        {
          details: { path, limit },
        },
      );
    }
    return text;
  } finally {
    await handle.close();
  }
}
