import { chmod, mkdir, stat } from 'node:fs/promises';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { acquireLockFile, type LockHandle } from '../../platform/files/lock-file.ts';
import { writeFileExclusive } from '../../platform/files/write-file-exclusive.ts';
import { type Configuration, DEFAULT_CONFIGURATION_TOML } from './configuration-schema.ts';
import { AUDIT_KEY_SECRET, type LoadedConfiguration } from './load-configuration.ts';

function unwritable(path: string, error: unknown): KeelError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
  const reason =
    {
      EACCES: 'permission denied',
      EPERM: 'operation not permitted',
      EROFS: 'read-only file system',
      ENOTDIR: 'a parent of it is a file',
      EEXIST: 'a file is in the way',
      ENOSPC: 'no space left on the device',
    }[code] ?? code;
  return new KeelError(
    'KEEL_DATA_DIR_UNWRITABLE',
    `cannot write the data directory ${path} (${reason})`,
    {
      cause: error,
    },
  );
}

/**
 * Creates the data directory (0700) if it does not exist. Call it before taking the
 * directory's lock; write the missing files ({@link writeMissingFiles}) only with the lock.
 *
 * @example
 * ```ts
 * await createDataDirectory(loaded.configuration);
 * ```
 */
export async function createDataDirectory(configuration: Configuration): Promise<void> {
  try {
    await mkdir(configuration.dataDirectory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw unwritable(configuration.dataDirectory, error);
  }
}

/**
 * Writes what `loadConfiguration` reported missing: a commented default `config.toml` and a
 * `secrets.toml` holding the audit key it generated (both 0600). Files are created with
 * exclusive writes and never replace anything: if one appeared since loading (another Keel
 * process initialised the directory meanwhile), the audit key in memory is not the one on
 * disk, so this refuses with `KEEL_CONFLICT` rather than run with the wrong key. Call it while
 * holding the data directory's lock.
 *
 * @example
 * ```ts
 * await createDataDirectory(loaded.configuration);
 * await using lock = await acquireLockFile(loaded.configuration.lockFile, 'a Keel node');
 * await writeMissingFiles(loaded);
 * ```
 */
export async function writeMissingFiles(loaded: LoadedConfiguration): Promise<void> {
  const { configuration, missing, secrets } = loaded;
  const directory = configuration.dataDirectory;
  const create = async (path: string, text: string): Promise<void> => {
    try {
      await writeFileExclusive(path, text, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new KeelError(
          'KEEL_CONFLICT',
          `${path} appeared while this command was starting: another Keel process initialised ${directory}`,
          {
            hint: 'run the command again; it will use the files that are there now',
          },
        );
      }
      throw unwritable(directory, error);
    }
  };
  if (missing.directory) {
    try {
      await chmod(directory, 0o700);
    } catch (error) {
      throw unwritable(directory, error);
    }
  }
  if (
    missing.secretsFile &&
    loaded.generatedAuditKey &&
    (await hasContent(configuration.databaseFile))
  ) {
    // A new key would start a chain that cannot verify the entries already written.
    throw new KeelError(
      'KEEL_AUDIT_KEY_MISSING',
      `${configuration.databaseFile} exists, but ${configuration.secretsFile}, with the audit key that signs its audit log, is missing`,
      {
        hint: 'restore secrets.toml from where you keep it, or set KEEL_SECRET_AUDIT_KEY to the original key',
      },
    );
  }
  if (missing.secretsFile) {
    // Only a key Keel generated goes into the file; one given through the environment stays
    // there and is not copied to disk.
    const keyLine = loaded.generatedAuditKey
      ? `${AUDIT_KEY_SECRET} = "${secrets.require(AUDIT_KEY_SECRET).reveal()}"\n`
      : `# ${AUDIT_KEY_SECRET} is given through the environment (KEEL_SECRET_AUDIT_KEY).\n`;
    await create(
      configuration.secretsFile,
      `# Keel secrets (mode 0600). Never commit this file.\n# The audit key signs the audit log: keep a copy, a lost key means unverifiable logs.\n${keyLine}`,
    );
  }
  if (missing.configFile) await create(configuration.configFile, DEFAULT_CONFIGURATION_TOML);
}

async function hasContent(path: string): Promise<boolean> {
  try {
    return (await stat(path)).size > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Takes a data directory for a writer (a node, `keel migrate`, `keel restore`): creates the
 * directory if needed, takes its lock, then writes the files that were missing. Release the
 * returned lock when done.
 *
 * @example
 * ```ts
 * await using lock = await claimDataDirectory(loaded);
 * ```
 */
export async function claimDataDirectory(loaded: LoadedConfiguration): Promise<LockHandle> {
  await createDataDirectory(loaded.configuration);
  const lock = await acquireLockFile(loaded.configuration.lockFile, 'a Keel node');
  try {
    await writeMissingFiles(loaded);
    return lock;
  } catch (error) {
    await lock.release();
    throw error;
  }
}
