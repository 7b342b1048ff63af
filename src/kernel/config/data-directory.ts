import { chmod, mkdir } from 'node:fs/promises';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { writeFileAtomic } from '../../platform/files/write-file-atomic.ts';
import { DEFAULT_CONFIGURATION_TOML } from './configuration-schema.ts';
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
 * Creates what `loadConfiguration` reported missing: the data directory (0700), a commented
 * default `config.toml` and a `secrets.toml` holding a new audit key (both 0600). Each file is
 * written atomically; existing files are never touched.
 *
 * @example
 * ```ts
 * const loaded = await loadConfiguration({ dataDirectory });
 * await initialiseDataDirectory(loaded);
 * ```
 */
export async function initialiseDataDirectory(loaded: LoadedConfiguration): Promise<void> {
  const { configuration, missing, secrets } = loaded;
  const directory = configuration.dataDirectory;
  try {
    if (missing.directory) {
      await mkdir(directory, { recursive: true, mode: 0o700 });
      await chmod(directory, 0o700);
    }
    if (missing.secretsFile) {
      // Only a key Keel generated goes into the file; one given through the environment stays
      // there and is not copied to disk.
      const keyLine = loaded.generatedAuditKey
        ? `${AUDIT_KEY_SECRET} = "${secrets.require(AUDIT_KEY_SECRET).reveal()}"\n`
        : `# ${AUDIT_KEY_SECRET} is given through the environment (KEEL_SECRET_AUDIT_KEY).\n`;
      await writeFileAtomic(
        configuration.secretsFile,
        `# Keel secrets (mode 0600). Never commit this file.\n# The audit key signs the audit log: keep a copy, a lost key means unverifiable logs.\n${keyLine}`,
        0o600,
      );
    }
    if (missing.configFile) {
      await writeFileAtomic(configuration.configFile, DEFAULT_CONFIGURATION_TOML, 0o600);
    }
  } catch (error) {
    throw unwritable(directory, error);
  }
}
