import { rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  AuditLog,
  type AuditVerification,
  verifyAuditStore,
} from '../../kernel/audit/audit-log.ts';
import { claimDataDirectory } from '../../kernel/config/data-directory.ts';
import type { LoadedConfiguration } from '../../kernel/config/load-configuration.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import { pathExists } from '../../platform/files/path-exists.ts';
import { syncDirectory } from '../../platform/files/write-file-exclusive.ts';
import {
  openSqliteStorage,
  type SqliteStorage,
} from '../../platform/storage/sqlite/sqlite-storage.ts';
import { existingAuditKey } from './audit-key.ts';

export interface RestoreResult {
  readonly restoredFrom: string;
  /** Where the database that was replaced now lives (`null` if there was none). */
  readonly previousDatabase: string | null;
  readonly audit: AuditVerification;
}

async function openCandidate(file: string, shownAs: string): Promise<SqliteStorage> {
  try {
    return await openSqliteStorage({ path: file, readOnly: true, migrationMode: 'inspect' });
  } catch (error) {
    throw new KeelError(
      'KEEL_RESTORE_REFUSED',
      `${shownAs} cannot be restored: ${isKeelError(error) ? error.message : String(error)}`,
      { hint: 'restore a backup made with keel backup; nothing was changed' },
    );
  }
}

/** Checks a staged copy: a sound SQLite file, a Keel schema, an audit chain that verifies. */
async function checkStaged(
  staged: string,
  shownAs: string,
  key: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<AuditVerification> {
  const candidate = await openCandidate(staged, shownAs);
  try {
    const check = await candidate.quickCheck();
    if (check !== 'ok') {
      throw new KeelError(
        'KEEL_RESTORE_REFUSED',
        `${shownAs} fails SQLite's quick check: ${check}`,
      );
    }
    const audit = await verifyAuditStore(
      candidate.audit,
      key,
      signal === undefined ? {} : { signal },
    );
    if (!audit.intact) {
      throw new KeelError(
        'KEEL_RESTORE_REFUSED',
        `${shownAs} has an audit chain that does not verify with this node's audit key (first break at entry #${audit.firstBreak?.seq}, ${audit.firstBreak?.reason})`,
        {
          details: { firstBreak: audit.firstBreak },
          hint: 'restore a backup of this node made with its own audit key; nothing was changed',
        },
      );
    }
    return audit;
  } finally {
    await candidate.close();
  }
}

/**
 * Replaces the node's database with a backup. The node must be stopped (its lock is taken).
 * The backup is copied with SQLite's online backup into the data directory first, and that
 * copy — the very file that will be put in place — must pass SQLite's quick check and have an
 * audit chain that verifies with this data directory's audit key; otherwise it is removed and
 * nothing changes. The replaced database is kept beside it as `keel.db.pre-restore-<time>`;
 * the restore itself is audited in the restored chain.
 *
 * @example
 * ```ts
 * const result = await restoreDatabase(loaded, '/backups/keel-2026-11-21.db', 'operator:cli');
 * ```
 */
export async function restoreDatabase(
  loaded: LoadedConfiguration,
  source: string,
  actor: string,
  options: { readonly signal?: AbortSignal } = {},
): Promise<RestoreResult> {
  options.signal?.throwIfAborted();
  const file = resolve(source);
  const { configuration } = loaded;
  const key = existingAuditKey(loaded);
  if (!(await pathExists(file))) throw new KeelError('KEEL_NOT_FOUND', `there is no file ${file}`);
  const lock = await claimDataDirectory(loaded);
  const staged = join(configuration.dataDirectory, `.keel.db.restore-${process.pid}`);
  try {
    const candidate = await openCandidate(file, file);
    try {
      await candidate.backup(staged);
    } finally {
      await candidate.close();
    }
    // A refused copy is removed by the finally below.
    const audit = await checkStaged(staged, file, key, options.signal);
    // Past this point the swap runs to its end: an interruption would leave no database.
    options.signal?.throwIfAborted();
    let previousDatabase: string | null = null;
    if (await pathExists(configuration.databaseFile)) {
      // Opening and closing the current database as its writer checkpoints its WAL into the
      // main file, so that the file moved aside is complete on its own.
      await (
        await openSqliteStorage({
          path: configuration.databaseFile,
          auditKey: key,
          migrationMode: 'inspect',
        })
      ).close();
      previousDatabase = `${configuration.databaseFile}.pre-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await rename(configuration.databaseFile, previousDatabase);
      for (const suffix of ['-wal', '-shm'])
        await rm(`${configuration.databaseFile}${suffix}`, { force: true });
    }
    await rename(staged, configuration.databaseFile);
    await syncDirectory(configuration.dataDirectory);
    const restored = await openSqliteStorage({ path: configuration.databaseFile, auditKey: key });
    try {
      await new AuditLog(restored.audit, systemClock, key).record({
        kind: 'node.restore',
        actor,
        outcome: 'restored',
        data: { from: file, previousDatabase, auditHead: audit.head },
      });
    } finally {
      await restored.close();
    }
    return { restoredFrom: file, previousDatabase, audit };
  } finally {
    await rm(staged, { force: true });
    await lock.release();
  }
}
