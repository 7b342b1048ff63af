import { isKeelError, KeelError } from '../../errors/keel-error.ts';

// SQLite primary result codes (https://sqlite.org/rescode.html).
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_NOMEM = 7;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_CONSTRAINT = 19;
const SQLITE_NOTADB = 26;

function sqliteCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === 'number' ? code & 0xff : undefined;
}

/**
 * Translates a node:sqlite error into a KeelError with the matching code, keeping the original
 * as `cause`. `path` names the database in messages.
 *
 * @example
 * ```ts
 * throw fromSqliteError(error, '/home/ana/.keel/keel.db');
 * ```
 */
export function fromSqliteError(error: unknown, path: string): KeelError {
  if (isKeelError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  switch (sqliteCode(error)) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return new KeelError(
        'KEEL_STORAGE_CORRUPT',
        `the database file ${path} is corrupted or is not a Keel database (${message})`,
        {
          cause: error,
          hint: `restore it from a backup with \`keel restore FILE\`; ${path} was not modified`,
        },
      );
    case SQLITE_FULL:
      return new KeelError('KEEL_STORAGE_FULL', `the disk holding ${path} is full`, {
        cause: error,
      });
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return new KeelError(
        'KEEL_STORAGE_UNAVAILABLE',
        `the database ${path} is locked (${message})`,
        {
          cause: error,
        },
      );
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `the database ${path} cannot be opened for writing (${message})`,
        { cause: error },
      );
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
      return new KeelError(
        'KEEL_STORAGE_UNAVAILABLE',
        `storage I/O failed on ${path} (${message})`,
        {
          cause: error,
        },
      );
    case SQLITE_CONSTRAINT:
      return new KeelError('KEEL_CONFLICT', message, { cause: error });
    default:
      return new KeelError('KEEL_INTERNAL', `storage error on ${path}: ${message}`, {
        cause: error,
      });
  }
}
