import { AuditLog } from '../../kernel/audit/audit-log.ts';
import { claimDataDirectory } from '../../kernel/config/data-directory.ts';
import {
  AUDIT_KEY_SECRET,
  decodeAuditKey,
  type LoadedConfiguration,
} from '../../kernel/config/load-configuration.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { openSqliteStorage } from '../../platform/storage/sqlite/sqlite-storage.ts';
import type { MigrationStatus } from '../../platform/storage/storage.ts';
import { existingAuditKey } from './audit-key.ts';

/**
 * Where the schema stands: every shipped migration and when it was applied.
 *
 * @example
 * ```ts
 * const pending = (await migrationStatus(loaded)).filter((migration) => migration.appliedAt === null);
 * ```
 */
export async function migrationStatus(
  loaded: LoadedConfiguration,
): Promise<readonly MigrationStatus[]> {
  const storage = await openSqliteStorage({
    path: loaded.configuration.databaseFile,
    readOnly: true,
    migrationMode: 'inspect',
  });
  try {
    return await storage.migrationStatus();
  } finally {
    await storage.close();
  }
}

async function statusIfPresent(
  loaded: LoadedConfiguration,
): Promise<readonly MigrationStatus[] | undefined> {
  try {
    return await migrationStatus(loaded);
  } catch (error) {
    if (isKeelError(error) && error.code === 'KEEL_NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * Applies pending migrations with the node stopped (its lock is taken) and audits what was
 * applied; creates the database if there is none. Returns the migrations applied now.
 *
 * @example
 * ```ts
 * const applied = await migrateDatabase(loaded, 'operator:cli');
 * ```
 */
export async function migrateDatabase(
  loaded: LoadedConfiguration,
  actor: string,
): Promise<readonly MigrationStatus[]> {
  const before = await statusIfPresent(loaded);
  // An existing database needs the key it was written with; a new one gets the new key.
  const auditKey =
    before === undefined
      ? decodeAuditKey(loaded.secrets.require(AUDIT_KEY_SECRET).reveal())
      : existingAuditKey(loaded);
  const lock = await claimDataDirectory(loaded);
  try {
    const appliedBefore = new Set(
      (before ?? [])
        .filter((migration) => migration.appliedAt !== null)
        .map((migration) => migration.version),
    );
    const storage = await openSqliteStorage({ path: loaded.configuration.databaseFile, auditKey });
    try {
      const applied = storage.migrationsAtOpen.filter(
        (migration) => !appliedBefore.has(migration.version),
      );
      if (applied.length > 0) {
        await new AuditLog(storage.audit, systemClock, auditKey).record({
          kind: 'storage.migrate',
          actor,
          outcome: 'applied',
          data: {
            migrations: applied.map((migration) => `${migration.version}_${migration.name}`),
          },
        });
      }
      return applied;
    } finally {
      await storage.close();
    }
  } finally {
    await lock.release();
  }
}
