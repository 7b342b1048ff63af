import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { KeelError } from '../errors/keel-error.ts';

/**
 * A failed file operation on a path a person named (a command's `--out`, a manifest file) as
 * the typed error it is — a missing folder, a file where a folder should be, no permission —
 * saying which path and what to do; undefined for anything that is not such a failure. Without
 * it these surface as `KEEL_INTERNAL`, which tells the user to report a bug in Keel.
 *
 * @example
 * ```ts
 * catch (error) { throw fileSystemError(error) ?? error; }
 * ```
 */
export function fileSystemError(error: unknown): KeelError | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, path, syscall } = error as NodeJS.ErrnoException;
  if (typeof code !== 'string' || typeof path !== 'string') return undefined;
  const options = { cause: error, details: { path, code } };
  switch (code) {
    case 'ENOENT':
      // The error does not say whether the file or its folder is missing: look (an error path).
      return existsSync(dirname(path))
        ? new KeelError('KEEL_NOT_FOUND', `${path} does not exist`, {
            ...options,
            hint: 'check the path',
          })
        : new KeelError('KEEL_NOT_FOUND', `the folder ${dirname(path)} does not exist`, {
            ...options,
            hint: 'check the path, or create the folder first',
          });
    case 'EEXIST':
      return syscall === 'mkdir'
        ? new KeelError('KEEL_INVALID_ARGUMENT', `${path} exists and is not a folder`, {
            ...options,
            hint: 'name a folder, or a path that does not exist yet',
          })
        : new KeelError('KEEL_CONFLICT', `${path} already exists`, {
            ...options,
            hint: 'choose another path, or move the file out of the way first',
          });
    case 'ENOTDIR':
      return new KeelError('KEEL_INVALID_ARGUMENT', `${path}: a part of it is not a folder`, {
        ...options,
        hint: 'check the path: a file stands where it names a folder',
      });
    case 'EISDIR':
      return new KeelError('KEEL_INVALID_ARGUMENT', `${path} is a folder, not a file`, {
        ...options,
        hint: 'name a file',
      });
    case 'EACCES':
    case 'EPERM':
      return new KeelError('KEEL_INVALID_ARGUMENT', `no permission to use ${path}`, {
        ...options,
        hint: 'check the owner and mode of the path and of its folders, or choose another path',
      });
    case 'EROFS':
      return new KeelError('KEEL_INVALID_ARGUMENT', `${path} is on a read-only file system`, {
        ...options,
        hint: 'choose a path on a writable file system',
      });
    case 'ENOSPC':
    case 'EDQUOT':
      return new KeelError('KEEL_STORAGE_FULL', `no space left to write ${path}`, {
        ...options,
        hint: 'free some space, or choose a path on another file system',
      });
    case 'ENAMETOOLONG':
      return new KeelError('KEEL_INVALID_ARGUMENT', `${path}: the name is too long`, {
        ...options,
        hint: 'choose a shorter path',
      });
    default:
      return undefined;
  }
}
