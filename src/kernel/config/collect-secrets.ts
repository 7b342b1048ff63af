import { readFile } from 'node:fs/promises';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { statOrUndefined } from './read-private-toml.ts';
import { SECRET_NAME_PATTERN } from './secrets.ts';

const MAX_SECRET_BYTES = 64 * 1024;

/** The environment, as the loader passes it in. */
type Environment = Readonly<Record<string, string | undefined>>;

async function readSecretFile(variable: string, path: string): Promise<string> {
  const stats = await statOrUndefined(path);
  if (stats === undefined || !stats.isFile()) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${variable} names ${path}, which is not a readable file`,
    );
  }
  if (stats.size > MAX_SECRET_BYTES) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${variable} names a file larger than ${MAX_SECRET_BYTES} bytes`,
    );
  }
  // Readable by others is the operator's choice (mounted secrets are often 0444); writable by
  // others is not: anyone could swap the secret.
  if ((stats.mode & 0o022) !== 0) {
    throw new KeelError(
      'KEEL_CONFIG_PERMISSIONS',
      `${variable} names ${path}, which others can write`,
      {
        hint: `run: chmod go-w '${path}'`,
      },
    );
  }
  return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
}

/**
 * The node's secrets: the secrets file's `name = "value"` pairs, then `KEEL_SECRET_<NAME>`
 * and `KEEL_SECRET_<NAME>_FILE` from the environment (which win). Names and sizes are
 * validated; a `_FILE` that others can write is refused.
 *
 * @example
 * ```ts
 * const secrets = await collectSecrets(rawSecretsToml, '/home/ana/.keel/secrets.toml', process.env);
 * ```
 */
export async function collectSecrets(
  fileSecrets: unknown,
  secretsFile: string,
  environment: Environment,
): Promise<Map<string, string>> {
  const secrets = new Map<string, string>();
  if (fileSecrets !== undefined) {
    for (const [name, value] of Object.entries(fileSecrets as Record<string, unknown>)) {
      if (!SECRET_NAME_PATTERN.test(name)) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `secrets file ${secretsFile}: ${name} is not a valid secret name`,
          {
            hint: 'secret names are lowercase letters, digits and underscores, starting with a letter',
          },
        );
      }
      if (
        typeof value !== 'string' ||
        value.length === 0 ||
        Buffer.byteLength(value) > MAX_SECRET_BYTES
      ) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `secrets file ${secretsFile}: ${name} must be a non-empty string`,
        );
      }
      secrets.set(name, value);
    }
  }
  for (const [variable, value] of Object.entries(environment)) {
    if (!variable.startsWith('KEEL_SECRET_') || value === undefined) continue;
    const fromFile = variable.endsWith('_FILE');
    const name = variable
      .slice('KEEL_SECRET_'.length, fromFile ? -'_FILE'.length : undefined)
      .toLowerCase();
    if (!SECRET_NAME_PATTERN.test(name)) {
      throw new KeelError('KEEL_CONFIG_INVALID', `${variable} does not name a valid secret`);
    }
    const secret = fromFile ? await readSecretFile(variable, value) : value;
    if (secret.length === 0) throw new KeelError('KEEL_CONFIG_INVALID', `${variable} is empty`);
    secrets.set(name, secret);
  }
  return secrets;
}
