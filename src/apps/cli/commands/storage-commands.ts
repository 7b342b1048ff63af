import type { Command } from 'commander';
import { backupDatabase } from '../../../runtime/maintenance/backup-database.ts';
import { migrateDatabase, migrationStatus } from '../../../runtime/maintenance/migrate-database.ts';
import { restoreDatabase } from '../../../runtime/maintenance/restore-database.ts';
import {
  action,
  type CommonOptions,
  EXIT_OK,
  loadForCommand,
  withCommonOptions,
} from '../cli-support.ts';
import type { Output } from '../output.ts';

const OPERATOR = 'operator:cli';

interface MigrateOptions extends CommonOptions {
  readonly status?: boolean;
}

async function migrate(output: Output, options: MigrateOptions): Promise<number> {
  const loaded = await loadForCommand(output, options);
  if (options.status === true) {
    const status = await migrationStatus(loaded);
    if (output.json) output.data(status);
    else {
      output.table(
        ['VERSION', 'NAME', 'APPLIED'],
        status.map((migration) => [
          String(migration.version),
          migration.name,
          migration.appliedAt === null ? 'pending' : new Date(migration.appliedAt).toISOString(),
        ]),
      );
    }
    return EXIT_OK;
  }
  const applied = await migrateDatabase(loaded, OPERATOR);
  if (output.json) output.data({ applied });
  else if (applied.length === 0) output.status('ok', 'the schema is up to date');
  else
    output.status(
      'ok',
      `applied ${applied.map((migration) => `${migration.version}_${migration.name}`).join(', ')}`,
    );
  return EXIT_OK;
}

interface BackupOptions extends CommonOptions {
  readonly force?: boolean;
}

async function backup(
  output: Output,
  file: string,
  options: BackupOptions,
  signal: AbortSignal,
): Promise<number> {
  const loaded = await loadForCommand(output, options);
  output.progress('backing up…');
  const result = await backupDatabase(loaded, file, { force: options.force === true, signal });
  output.endProgress();
  if (output.json) output.data(result);
  else {
    output.status('ok', `backed up to ${result.file} (${(result.bytes / 1024).toFixed(0)} KiB)`);
    output.status(
      'ok',
      `audit chain verified: ${result.audit.checked} entries, head #${result.audit.head.seq} ${result.audit.head.hash} (record this head to detect truncation later)`,
    );
  }
  return EXIT_OK;
}

async function restore(
  output: Output,
  file: string,
  options: CommonOptions,
  signal: AbortSignal,
): Promise<number> {
  const loaded = await loadForCommand(output, options);
  const result = await restoreDatabase(loaded, file, OPERATOR, { signal });
  if (output.json) output.data(result);
  else {
    output.status(
      'ok',
      `restored ${result.restoredFrom} (audit chain verified: ${result.audit.checked} entries)`,
    );
    if (result.previousDatabase !== null)
      output.status('info', `the previous database is kept at ${result.previousDatabase}`);
  }
  return EXIT_OK;
}

/**
 * Adds `keel migrate`, `keel backup` and `keel restore` to the program.
 */
export function registerStorageCommands(program: Command): void {
  withCommonOptions(
    program
      .command('migrate')
      .description(
        'apply pending schema migrations (the node must be stopped; keel start also applies them)',
      )
      .option('--status', 'only show which migrations are applied'),
  ).action(action(({ output }, options: MigrateOptions) => migrate(output, options)));

  withCommonOptions(
    program
      .command('backup')
      .description("copy the database with SQLite's online backup and verify the copy")
      .argument('<file>', 'where to write the backup')
      .option('--force', 'overwrite the file if it exists'),
  )
    .addHelpText(
      'after',
      '\nWorks while a node runs. The audit key is not in the backup: keep secrets.toml safe separately.',
    )
    .action(
      action(({ output, signal }, file: string, options: BackupOptions) =>
        backup(output, file, options, signal),
      ),
    );

  withCommonOptions(
    program
      .command('restore')
      .description(
        'replace the database with a backup whose audit chain verifies (the node must be stopped)',
      )
      .argument('<file>', 'the backup to restore'),
  )
    .addHelpText(
      'after',
      '\nThe replaced database is kept beside it as keel.db.pre-restore-<time>.',
    )
    .action(
      action(({ output, signal }, file: string, options: CommonOptions) =>
        restore(output, file, options, signal),
      ),
    );
}
