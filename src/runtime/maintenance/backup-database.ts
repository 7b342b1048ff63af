import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type AuditVerification, verifyAuditStore } from '../../kernel/audit/audit-log.ts';
import type { LoadedConfiguration } from '../../kernel/config/load-configuration.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { openSqliteStorage } from '../../platform/storage/sqlite/sqlite-storage.ts';
import { existingAuditKey } from './audit-key.ts';

export interface BackupResult {
  readonly file: string;
  readonly bytes: number;
  /** The backup's audit chain, verified: its head is worth recording as an anchor. */
  readonly audit: AuditVerification;
}

/**
 * Writes a consistent copy of the node's database to `destination` with SQLite's online
 * backup (a running node keeps working), then checks the copy: SQLite's quick check and the
 * full audit chain. Refuses to overwrite an existing file unless `force`. `signal` stops it
 * between steps (a copy already written stays, complete).
 *
 * @example
 * ```ts
 * const result = await backupDatabase(loaded, '/backups/keel-2026-11-21.db');
 * ```
 */
export async function backupDatabase(
  loaded: LoadedConfiguration,
  destination: string,
  options: { readonly force?: boolean; readonly signal?: AbortSignal } = {},
): Promise<BackupResult> {
  options.signal?.throwIfAborted();
  const file = resolve(destination);
  const key = existingAuditKey(loaded);
  if (file === loaded.configuration.databaseFile) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'the backup file cannot be the database itself');
  }
  if (!options.force) {
    const existing = await stat(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (existing !== undefined) {
      throw new KeelError('KEEL_CONFLICT', `${file} already exists`, {
        hint: 'choose another file or pass --force',
      });
    }
  }
  const source = await openSqliteStorage({
    path: loaded.configuration.databaseFile,
    readOnly: true,
    migrationMode: 'inspect',
  });
  try {
    await source.backup(file);
  } finally {
    await source.close();
  }
  const copy = await openSqliteStorage({ path: file, readOnly: true, migrationMode: 'inspect' });
  try {
    const check = await copy.quickCheck();
    if (check !== 'ok') {
      throw new KeelError(
        'KEEL_BACKUP_FAILED',
        `the backup ${file} failed SQLite's quick check: ${check}`,
      );
    }
    const audit = await verifyAuditStore(
      copy.audit,
      key,
      options.signal === undefined ? {} : { signal: options.signal },
    );
    if (!audit.intact) {
      throw new KeelError(
        'KEEL_AUDIT_CHAIN_BROKEN',
        `the audit chain in the database is broken at entry #${audit.firstBreak?.seq}; the backup was written but holds a broken chain`,
        {
          details: { file, firstBreak: audit.firstBreak },
        },
      );
    }
    return { file, bytes: (await stat(file)).size, audit };
  } finally {
    await copy.close();
  }
}
