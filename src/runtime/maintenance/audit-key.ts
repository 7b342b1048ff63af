import {
  AUDIT_KEY_SECRET,
  decodeAuditKey,
  type LoadedConfiguration,
} from '../../kernel/config/load-configuration.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';

/**
 * The audit key of an existing data directory, for commands that read what a node wrote. A
 * key that loading only just generated (there was none) cannot verify anything.
 *
 * @example
 * ```ts
 * const key = existingAuditKey(loaded); // refuses a key that loading only just made
 * ```
 */
export function existingAuditKey(loaded: LoadedConfiguration): Uint8Array {
  if (loaded.generatedAuditKey) {
    if (loaded.missing.directory) {
      throw new KeelError(
        'KEEL_NOT_FOUND',
        `there is no Keel data directory at ${loaded.configuration.dataDirectory}`,
        {
          hint: 'start a node there first, pass --data-dir, or set KEEL_HOME',
        },
      );
    }
    throw new KeelError(
      'KEEL_AUDIT_KEY_MISSING',
      `${loaded.configuration.secretsFile} does not exist, so there is no audit key`,
      {
        hint: 'restore secrets.toml with its audit_key, or set KEEL_SECRET_AUDIT_KEY',
      },
    );
  }
  return decodeAuditKey(loaded.secrets.require(AUDIT_KEY_SECRET).reveal());
}
