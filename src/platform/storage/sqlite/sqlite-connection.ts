import { constants, DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Synchronous } from './worker-protocol.ts';

export interface ConnectionOptions {
  readonly readOnly: boolean;
  readonly synchronous: Synchronous;
}

/**
 * Opens a SQLite connection the way Keel uses it: WAL, foreign keys, defensive mode, a busy
 * timeout, no extension loading, and an authorizer that refuses ATTACH/DETACH so that no
 * statement can reach another database file.
 *
 * @example
 * ```ts
 * const database = openConnection('/home/ana/.keel/keel.db', { readOnly: false, synchronous: 'full' });
 * ```
 */
export function openConnection(path: string, options: ConnectionOptions): DatabaseSync {
  const database = new DatabaseSync(path, {
    readOnly: options.readOnly,
    enableForeignKeyConstraints: true,
    enableDoubleQuotedStringLiterals: false,
    allowExtension: false,
    defensive: true,
    timeout: 5_000,
  });
  try {
    database.setAuthorizer((action) =>
      action === constants.SQLITE_ATTACH || action === constants.SQLITE_DETACH
        ? constants.SQLITE_DENY
        : constants.SQLITE_OK,
    );
    // Reading the schema first makes a file that is not a database fail here, before any
    // pragma could try to write to it.
    database.prepare('SELECT count(*) FROM sqlite_schema').get();
    if (!options.readOnly) {
      database.exec('PRAGMA journal_mode = WAL');
    }
    database.exec(`PRAGMA synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    database.exec('PRAGMA trusted_schema = OFF');
    return database;
  } catch (error) {
    database.close();
    throw error;
  }
}

/**
 * Prepared statements by SQL text, prepared once per connection.
 *
 * @example
 * ```ts
 * const statements = new StatementCache(database);
 * statements.get('SELECT 1').get();
 * ```
 */
export class StatementCache {
  readonly database: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  constructor(database: DatabaseSync) {
    this.database = database;
  }

  get(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.database.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
}
