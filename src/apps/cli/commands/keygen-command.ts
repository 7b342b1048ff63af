import { mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { pathExists } from '../../../platform/files/path-exists.ts';
import { writeFileExclusive } from '../../../platform/files/write-file-exclusive.ts';
import { generateSigningKeyPair } from '../../../runtime/manifests/manifest-signing.ts';
import { action, EXIT_OK } from '../cli-support.ts';

/** A key name is also a file name: no separators, no leading dot, nothing TOML must escape. */
const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const DEFAULT_KEY_NAME = 'keel-publisher';

/** What `keel keygen` wrote. */
export interface SigningKeyFiles {
  readonly keyId: string;
  /** Absolute path of `<name>.key`: the private key, PKCS #8 PEM, mode 0600. */
  readonly privateKeyFile: string;
  /** Absolute path of `<name>.pub`: the public key in base64, mode 0644. */
  readonly publicKeyFile: string;
  /** The 32 raw public key bytes, standard base64. */
  readonly publicKey: string;
}

function parseKeyName(value: string): string {
  if (!KEY_NAME_PATTERN.test(value)) {
    throw new InvalidArgumentError(
      'expected letters, digits, dots, hyphens and underscores, starting with a letter or digit (at most 64).',
    );
  }
  return value;
}

function alreadyExists(path: string, cause?: unknown): KeelError {
  return new KeelError('KEEL_CONFLICT', `${path} already exists`, {
    details: { path },
    hint: 'choose another --name or --out, or pass --force to replace the key (the old key is lost)',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Creates a file that must not exist yet: complete, flushed, never replacing anything. */
async function writeNewFile(path: string, data: string, mode: number): Promise<void> {
  try {
    await writeFileExclusive(path, data, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(path, error);
    throw error;
  }
}

/**
 * Creates a manifest signing key pair as `<directory>/<name>.key` (private, mode 0600) and
 * `<directory>/<name>.pub` (public key in base64, mode 0644). Refuses to replace existing files
 * (`KEEL_CONFLICT`) unless `force`.
 *
 * @example
 * ```ts
 * const { keyId, privateKeyFile } = await writeSigningKeyFiles('.', 'keel-publisher', false);
 * ```
 */
export async function writeSigningKeyFiles(
  directory: string,
  name: string,
  force: boolean,
): Promise<SigningKeyFiles> {
  if (!KEY_NAME_PATTERN.test(name)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${JSON.stringify(name)} is not a key name`, {
      hint: 'use letters, digits, dots, hyphens and underscores, starting with a letter or digit',
    });
  }
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const privateKeyFile = resolve(directory, `${name}.key`);
  const publicKeyFile = resolve(directory, `${name}.pub`);
  if (force) {
    await rm(privateKeyFile, { force: true });
    await rm(publicKeyFile, { force: true });
  } else {
    for (const path of [privateKeyFile, publicKeyFile]) {
      if (await pathExists(path)) throw alreadyExists(path);
    }
  }
  const pair = generateSigningKeyPair();
  await writeNewFile(privateKeyFile, pair.privateKeyPem, 0o600);
  try {
    await writeNewFile(publicKeyFile, `${pair.publicKey}\n`, 0o644);
  } catch (error) {
    // A private key without its public half is of no use; do not leave it behind.
    await rm(privateKeyFile, { force: true });
    throw error;
  }
  return { keyId: pair.keyId, privateKeyFile, publicKeyFile, publicKey: pair.publicKey };
}

/**
 * The `config.toml` lines that make a node trust a publisher key.
 *
 * @example
 * ```ts
 * output.line(trustedKeySnippet('ci', files.publicKey));
 * ```
 */
export function trustedKeySnippet(name: string, publicKey: string): string {
  return `[[agents.trusted_keys]]\nname = ${JSON.stringify(name)}\npublic_key = ${JSON.stringify(publicKey)}`;
}

interface KeygenOptions {
  readonly out: string;
  readonly name: string;
  readonly force?: boolean;
  readonly json?: boolean;
}

/**
 * Adds `keel keygen`: creates an Ed25519 key pair for signing agent manifests and prints the
 * `config.toml` snippet that makes a node trust it.
 *
 * @example
 * ```ts
 * registerKeygenCommand(program);
 * ```
 */
export function registerKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('create an Ed25519 key pair for signing agent manifests (keel agent sign)')
    .option('--out <dir>', 'the directory to write the key files to', '.')
    .option(
      '--name <name>',
      'the key name: <name>.key and <name>.pub',
      parseKeyName,
      DEFAULT_KEY_NAME,
    )
    .option('--force', 'replace existing key files of that name (the old key is lost)')
    .option('--json', 'print machine-readable JSON instead of text')
    .action(
      action(async ({ output }, options: KeygenOptions) => {
        const files = await writeSigningKeyFiles(options.out, options.name, options.force === true);
        if (output.json) {
          output.data(files);
          return EXIT_OK;
        }
        output.status('ok', `created signing key ${files.keyId}`);
        output.line(`  private key: ${files.privateKeyFile} (mode 0600; keep it secret)`);
        output.line(`  public key:  ${files.publicKeyFile}`);
        output.line();
        output.line('To trust manifests signed with it, add this to the node’s config.toml:');
        output.line();
        output.line(trustedKeySnippet(options.name, files.publicKey));
        return EXIT_OK;
      }),
    );
}
