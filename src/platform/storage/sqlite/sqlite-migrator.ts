import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { DatabaseSync } from 'node:sqlite';
import { KeelError } from '../../errors/keel-error.ts';
import type { MigrationStatus } from '../storage.ts';

/** One forward-only migration: `NNNN_name.sql`. */
export interface MigrationFile {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /** SHA-256 of the file's bytes; an applied migration must keep it. */
  readonly checksum: string;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** The migrations shipped with Keel for SQLite. */
export const SQLITE_MIGRATIONS_DIRECTORY = new URL('./migrations/', import.meta.url);

/**
 * Reads the numbered migration files of a directory. Numbers must run 1, 2, 3… without gaps
 * or duplicates. Synchronous: runs once at start-up.
 *
 * @example
 * ```ts
 * const migrations = loadMigrations(); // [{ version: 1, name: 'initial', … }]
 * ```
 */
export function loadMigrations(directory: URL = SQLITE_MIGRATIONS_DIRECTORY): MigrationFile[] {
  const files = readdirSync(directory)
    .filter((name) => name.endsWith('.sql'))
    .sort();
  return files.map((file, index) => {
    const match = FILE_PATTERN.exec(file);
    if (match === null) {
      throw new KeelError('KEEL_INTERNAL', `migration file ${file} is not named NNNN_name.sql`);
    }
    const version = Number(match[1]);
    if (version !== index + 1) {
      throw new KeelError(
        'KEEL_INTERNAL',
        `migration ${file} should be number ${index + 1}: migrations are numbered without gaps`,
      );
    }
    const bytes = readFileSync(new URL(file, directory));
    return {
      version,
      name: match[2] ?? file,
      sql: bytes.toString('utf8'),
      checksum: createHash('sha256').update(bytes).digest('hex'),
    };
  });
}

const LEDGER_SQL = `CREATE TABLE IF NOT EXISTS keel_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at INTEGER NOT NULL
) STRICT`;

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
  applied_at: number;
}

function readApplied(database: DatabaseSync): AppliedRow[] | undefined {
  const ledger = database
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'keel_migrations'")
    .get();
  if (ledger === undefined) return undefined;
  return database
    .prepare('SELECT version, name, checksum, applied_at FROM keel_migrations ORDER BY version')
    .all() as unknown as AppliedRow[];
}

/**
 * What to do about pending migrations: apply them, refuse to go on (a reader that needs the
 * current schema), or only report them.
 */
export type MigrationMode = 'apply' | 'require-current' | 'inspect';

/**
 * Compares the database's applied migrations with the shipped ones and, in `apply` mode,
 * applies the pending ones, each in its own transaction. Refuses a database that is not
 * Keel's, that a newer Keel migrated, or whose applied migrations changed.
 *
 * @example
 * ```ts
 * migrate(database, loadMigrations(), { mode: 'apply', path, now: Date.now() });
 * ```
 */
export function migrate(
  database: DatabaseSync,
  migrations: readonly MigrationFile[],
  options: { readonly mode: MigrationMode; readonly path: string; readonly now: number },
): MigrationStatus[] {
  let applied = readApplied(database);
  if (applied === undefined) {
    const tables = database
      .prepare("SELECT count(*) AS count FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")
      .get() as { count: number };
    if (tables.count > 0) {
      throw new KeelError(
        'KEEL_STORAGE_CORRUPT',
        `${options.path} is a SQLite database but not a Keel database`,
        { hint: 'point --data-dir at a Keel data directory; the file was not modified' },
      );
    }
    if (options.mode === 'require-current') {
      throw new KeelError('KEEL_MIGRATION_PENDING', `${options.path} has no Keel schema yet`, {
        hint: 'start the node once or run `keel migrate`',
      });
    }
    if (options.mode === 'apply') database.exec(LEDGER_SQL);
    applied = [];
  }
  const shipped = new Map(migrations.map((migration) => [migration.version, migration]));
  for (const row of applied) {
    const migration = shipped.get(row.version);
    if (migration === undefined) {
      throw new KeelError(
        'KEEL_MIGRATION_UNKNOWN',
        `${options.path} has migration ${row.version} (${row.name}) that this Keel does not ship`,
      );
    }
    if (migration.checksum !== row.checksum) {
      throw new KeelError(
        'KEEL_MIGRATION_CHECKSUM_MISMATCH',
        `migration ${row.version} (${row.name}) changed after it was applied to ${options.path}`,
        { details: { version: row.version, applied: row.checksum, shipped: migration.checksum } },
      );
    }
  }
  const appliedVersions = new Set(applied.map((row) => row.version));
  const pending = migrations.filter((migration) => !appliedVersions.has(migration.version));
  if (pending.length > 0 && options.mode === 'require-current') {
    throw new KeelError(
      'KEEL_MIGRATION_PENDING',
      `${options.path} needs ${pending.length} migration(s) before it can be read`,
    );
  }
  if (options.mode === 'apply' && pending.length > 0) applyPending(database, pending, options.now);
  const appliedAt = new Map(
    (readApplied(database) ?? []).map((row) => [row.version, row.applied_at] as const),
  );
  return migrations.map((migration) => ({
    version: migration.version,
    name: migration.name,
    checksum: migration.checksum,
    appliedAt: appliedAt.get(migration.version) ?? null,
  }));
}

function applyPending(
  database: DatabaseSync,
  pending: readonly MigrationFile[],
  now: number,
): void {
  const record = database.prepare(
    'INSERT INTO keel_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)',
  );
  for (const migration of pending) {
    database.exec('BEGIN IMMEDIATE');
    try {
      database.exec(migration.sql);
      record.run(migration.version, migration.name, migration.checksum, now);
      database.exec('COMMIT');
    } catch (error) {
      database.exec('ROLLBACK');
      throw error;
    }
  }
}
