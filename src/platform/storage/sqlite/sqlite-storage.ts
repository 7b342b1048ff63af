import { randomBytes } from 'node:crypto';
import { access, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isKeelError, KeelError } from '../../errors/keel-error.ts';
import { syncDirectory } from '../../files/write-file-exclusive.ts';
import type { AgentStore } from '../ports/agent-store.ts';
import type { ApprovalStore } from '../ports/approval-store.ts';
import type { BudgetStore } from '../ports/budget-store.ts';
import type { GrantStore } from '../ports/grant-store.ts';
import type { KeyValueStore } from '../ports/key-value-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { UsageStore } from '../ports/usage-store.ts';
import type { MigrationStatus, Storage, StorageHealth } from '../storage.ts';
import { SqliteAuditStore } from './sqlite-audit-store.ts';
import { loadMigrations, type MigrationFile, type MigrationMode } from './sqlite-migrator.ts';
import { WorkerClient } from './worker-client.ts';
import type {
  OperationName,
  StorageStatistics,
  StoreOperations,
  Synchronous,
} from './worker-protocol.ts';

export interface SqliteStorageOptions {
  /** The database file. */
  readonly path: string;
  /** The audit chain's HMAC key; without it the audit log can be read but not appended to. */
  readonly auditKey?: Uint8Array;
  /** Open without writing: no migrations, no appends (for `keel audit verify`, `keel backup`). */
  readonly readOnly?: boolean;
  /** `full` (default) fsyncs every commit; `normal` survives a process crash, not power loss. */
  readonly synchronous?: Synchronous;
  /** Default: `apply` when writable, `require-current` when read-only. */
  readonly migrationMode?: MigrationMode;
  /** Most requests grouped in one transaction. Default 1,000. */
  readonly maxBatch?: number;
  readonly migrations?: readonly MigrationFile[];
  /** Called once if the storage worker dies; the owner should stop the node. */
  readonly onFatal?: (error: KeelError) => void;
}

/** Builds a port object whose methods are storage operations named `prefix.method`. */
function bindStore<Port extends object>(
  client: WorkerClient,
  prefix: string,
  methods: readonly (keyof Port & string)[],
): Port {
  const store: Record<string, (...parameters: unknown[]) => Promise<unknown>> = {};
  for (const method of methods) {
    const operation = `${prefix}.${method}` as OperationName & keyof StoreOperations;
    store[method] = (...parameters: unknown[]) =>
      client.call(
        operation,
        parameters as unknown as StoreOperations[typeof operation]['parameters'],
      );
  }
  return Object.freeze(store) as unknown as Port;
}

/**
 * The embedded storage adapter: one SQLite file in WAL mode, written by a single worker thread
 * with group commit, so the main event loop never blocks on disk.
 *
 * @example
 * ```ts
 * const storage = await openSqliteStorage({ path: '/var/lib/keel/keel.db', auditKey });
 * await storage.keyValues.set('greeting', 'hello', Date.now());
 * await storage.close();
 * ```
 */
export class SqliteStorage implements Storage {
  readonly path: string;
  readonly audit: SqliteAuditStore;
  readonly agents: AgentStore;
  readonly runs: RunStore;
  readonly approvals: ApprovalStore;
  readonly usage: UsageStore;
  readonly budgets: BudgetStore;
  readonly keyValues: KeyValueStore;
  readonly grants: GrantStore;
  readonly migrationsAtOpen: readonly MigrationStatus[];
  readonly #client: WorkerClient;

  constructor(
    path: string,
    client: WorkerClient,
    migrations: readonly MigrationStatus[],
    auditKey: Uint8Array | null,
  ) {
    this.path = path;
    this.#client = client;
    this.migrationsAtOpen = migrations;
    this.audit = new SqliteAuditStore(client, auditKey);
    this.agents = bindStore<AgentStore>(client, 'agents', [
      'create',
      'get',
      'getByName',
      'list',
      'updateState',
      'setTrustLevel',
      'history',
    ]);
    this.runs = bindStore<RunStore>(client, 'runs', [
      'create',
      'get',
      'list',
      'updateStatus',
      'requeueSuspended',
      'startAttempt',
      'end',
      'returnAttempt',
      'journalCounts',
      'appendJournal',
      'getJournal',
      'journalHead',
      'listJournal',
    ]);
    this.approvals = bindStore<ApprovalStore>(client, 'approvals', [
      'create',
      'get',
      'list',
      'findLatest',
      'decide',
      'expireDue',
      'consume',
    ]);
    this.usage = bindStore<UsageStore>(client, 'usage', ['record', 'summarize']);
    this.budgets = bindStore<BudgetStore>(client, 'budgets', [
      'setLimits',
      'get',
      'list',
      'reserve',
      'settle',
      'release',
      'inherit',
      'reset',
      'listOpenReservations',
    ]);
    this.keyValues = bindStore<KeyValueStore>(client, 'keyValues', [
      'get',
      'set',
      'delete',
      'list',
    ]);
    this.grants = bindStore<GrantStore>(client, 'grants', [
      'add',
      'get',
      'revoke',
      'listActive',
      'listAll',
      'replace',
    ]);
  }

  health(): StorageHealth {
    if (this.#client.ready) return { ready: true, detail: `sqlite ${this.path}` };
    return {
      ready: false,
      detail: this.#client.failure?.message ?? `sqlite ${this.path} is not open`,
    };
  }

  migrationStatus(): Promise<readonly MigrationStatus[]> {
    return this.#client.call('storage.migrationStatus', []);
  }

  /**
   * How many transactions the writer committed and how many requests they held: the ratio is
   * the group-commit factor.
   */
  statistics(): Promise<StorageStatistics> {
    return this.#client.call('storage.statistics', []);
  }

  /** Runs SQLite's `PRAGMA quick_check`; answers `ok` for a sound file. */
  quickCheck(): Promise<string> {
    return this.#client.call('storage.quickCheck', []);
  }

  /**
   * Writes a consistent copy of the database to `destination` with SQLite's online backup,
   * while the database stays in use. The copy is written beside the destination and renamed
   * into place, so a failed backup never leaves a partial file under the final name.
   */
  async backup(destination: string): Promise<void> {
    const partial = join(
      dirname(destination),
      `.${basename(destination)}.partial-${randomBytes(6).toString('hex')}`,
    );
    try {
      await this.#client.backup(partial);
      const handle = await open(partial, 'r');
      try {
        await handle.chmod(0o600);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(partial, destination);
      await syncDirectory(dirname(destination));
    } catch (error) {
      await rm(partial, { force: true });
      if (isKeelError(error)) throw error;
      throw new KeelError('KEEL_BACKUP_FAILED', `backup to ${destination} failed`, {
        cause: error,
      });
    }
  }

  /** Lets appends and requests already made finish, then closes the database. Idempotent. */
  async close(): Promise<void> {
    await this.audit.drain();
    await this.#client.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Opens (creating and migrating, unless read-only) a Keel SQLite database.
 *
 * @example
 * ```ts
 * const storage = await openSqliteStorage({ path: '/home/ana/.keel/keel.db', auditKey });
 * try { await storage.agents.list(); } finally { await storage.close(); }
 * ```
 */
export async function openSqliteStorage(options: SqliteStorageOptions): Promise<SqliteStorage> {
  const readOnly = options.readOnly ?? false;
  if (!readOnly) {
    // Create the file owner-only before SQLite does (SQLite gives its -wal and -shm files the
    // database file's mode): the database holds the audit log and agents' data.
    try {
      const handle = await open(options.path, 'a', 0o600);
      try {
        // An existing database with a looser mode is tightened: it is Keel's own file.
        if (((await handle.stat()).mode & 0o077) !== 0) await handle.chmod(0o600);
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `cannot create the database ${options.path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        {
          cause: error,
        },
      );
    }
  } else {
    try {
      await access(options.path);
    } catch (error) {
      throw new KeelError('KEEL_NOT_FOUND', `there is no Keel database at ${options.path}`, {
        cause: error,
        hint: 'start a node on this data directory first, or restore a backup into it',
      });
    }
  }
  const { client, migrations } = await WorkerClient.start(
    {
      path: options.path,
      readOnly,
      synchronous: options.synchronous ?? 'full',
      migrations: options.migrations ?? loadMigrations(),
      migrationMode: options.migrationMode ?? (readOnly ? 'require-current' : 'apply'),
      maxBatch: options.maxBatch ?? 1_000,
    },
    options.onFatal ?? (() => undefined),
  );
  return new SqliteStorage(options.path, client, migrations, options.auditKey ?? null);
}
