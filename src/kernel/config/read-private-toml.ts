import type { Stats } from 'node:fs';
import { constants, type FileHandle, open, stat } from 'node:fs/promises';
import { parse as parseToml, TomlError } from 'smol-toml';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { assertPrivate } from '../../platform/files/private-mode.ts';

const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * `stat`, or `undefined` when nothing is there; a path through a file is unwritable.
 *
 * @example
 * ```ts
 * const stats = await statOrUndefined('/home/ana/.keel');
 * ```
 */
export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `${path} cannot exist: a parent of it is a file`,
        {
          cause: error,
        },
      );
    }
    if (code === 'EACCES') {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `${path} cannot be read (permission denied)`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

/**
 * Reads and parses a TOML file that must be private (mode 0600, owned by `uid`, not a
 * symbolic link), checked on the very handle that is read. `undefined` when absent. For a
 * file that holds secrets, a parse error says where but never quotes the file.
 *
 * @example
 * ```ts
 * const raw = await readPrivateToml('/home/ana/.keel/config.toml', 'config file', process.getuid?.(), false);
 * ```
 */
export async function readPrivateToml(
  path: string,
  what: string,
  uid: number | undefined,
  holdsSecrets: boolean,
): Promise<unknown> {
  let handle: FileHandle;
  try {
    // No symbolic links, and the checks apply to the very file that is read (no window
    // between checking one path and reading another).
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      throw new KeelError('KEEL_CONFIG_PERMISSIONS', `${what} ${path} is a symbolic link`, {
        hint: `replace the link with the file itself (Keel reads only regular files it owns)`,
      });
    }
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${what} ${path} cannot be read (${code ?? String(error)})`,
      {
        cause: error,
      },
    );
  }
  let text: string;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new KeelError('KEEL_CONFIG_INVALID', `${what} ${path} is not a regular file`);
    }
    assertPrivate(stats, path, what, uid);
    if (stats.size > MAX_CONFIG_BYTES) {
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `${what} ${path} is larger than ${MAX_CONFIG_BYTES} bytes`,
      );
    }
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  try {
    return parseToml(text);
  } catch (error) {
    const where =
      error instanceof TomlError ? ` at line ${error.line}, column ${error.column}` : '';
    const hint = `fix ${path}, or move it away to get a fresh default`;
    if (holdsSecrets) {
      // The parser's message quotes the offending line, which may hold a secret nobody can
      // redact yet: say only where.
      throw new KeelError('KEEL_CONFIG_INVALID', `${what} ${path} is not valid TOML${where}`, {
        hint,
      });
    }
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${what} ${path} is not valid TOML${where}: ${reason}`,
      {
        cause: error,
        hint,
      },
    );
  }
}
