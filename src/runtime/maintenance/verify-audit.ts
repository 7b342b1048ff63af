import { type AuditVerification, verifyAuditStore } from '../../kernel/audit/audit-log.ts';
import type { LoadedConfiguration } from '../../kernel/config/load-configuration.ts';
import type { AuditRecord } from '../../platform/integrity/audit-chain.ts';
import { openSqliteStorage } from '../../platform/storage/sqlite/sqlite-storage.ts';
import { existingAuditKey } from './audit-key.ts';

/**
 * Verifies the audit chain of a data directory's database (or of another database file, e.g.
 * a backup) with the data directory's audit key, reading it without writing. Works while a
 * node is running.
 *
 * @example
 * ```ts
 * const verification = await verifyAudit(loaded);
 * if (!verification.intact) console.error(verification.firstBreak);
 * ```
 */
export async function verifyAudit(
  loaded: LoadedConfiguration,
  options: { readonly onProgress?: (checked: number, total: number) => void } = {},
): Promise<AuditVerification> {
  const key = existingAuditKey(loaded);
  const storage = await openSqliteStorage({
    path: loaded.configuration.databaseFile,
    readOnly: true,
    migrationMode: 'inspect',
  });
  try {
    return await verifyAuditStore(storage.audit, key, options.onProgress);
  } finally {
    await storage.close();
  }
}

/** The last `limit` audit entries, oldest first; from `afterSeq` when following. */
export async function readAuditTail(
  loaded: LoadedConfiguration,
  options: { readonly limit: number; readonly afterSeq?: number },
): Promise<readonly AuditRecord[]> {
  const storage = await openSqliteStorage({
    path: loaded.configuration.databaseFile,
    readOnly: true,
    migrationMode: 'inspect',
  });
  try {
    if (options.afterSeq !== undefined)
      return await storage.audit.read(options.afterSeq + 1, options.limit);
    return await storage.audit.tail(options.limit);
  } finally {
    await storage.close();
  }
}
