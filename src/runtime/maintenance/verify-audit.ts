import { type AuditVerification, verifyAuditStore } from '../../kernel/audit/audit-log.ts';
import type { LoadedConfiguration } from '../../kernel/config/load-configuration.ts';
import {
  openSqliteStorage,
  type SqliteStorage,
} from '../../platform/storage/sqlite/sqlite-storage.ts';
import { existingAuditKey } from './audit-key.ts';

/**
 * Opens a data directory's database for reading only (no migrations, no writes); works while
 * a node runs. Close it when done.
 *
 * @example
 * ```ts
 * await using reader = await openAuditReader(loaded);
 * const latest = await reader.audit.tail(20);
 * ```
 */
export function openAuditReader(loaded: LoadedConfiguration): Promise<SqliteStorage> {
  return openSqliteStorage({
    path: loaded.configuration.databaseFile,
    readOnly: true,
    migrationMode: 'inspect',
  });
}

/**
 * Verifies the audit chain of a data directory's database with its audit key, reading it
 * without writing. Works while a node is running; stops when `signal` aborts.
 *
 * @example
 * ```ts
 * const verification = await verifyAudit(loaded, { signal });
 * if (!verification.intact) console.error(verification.firstBreak);
 * ```
 */
export async function verifyAudit(
  loaded: LoadedConfiguration,
  options: {
    readonly onProgress?: (checked: number, total: number) => void;
    readonly signal?: AbortSignal;
  } = {},
): Promise<AuditVerification> {
  const key = existingAuditKey(loaded);
  const storage = await openAuditReader(loaded);
  try {
    return await verifyAuditStore(storage.audit, key, options);
  } finally {
    await storage.close();
  }
}
