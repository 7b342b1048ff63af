import { extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { assertPrivate } from '../../../platform/files/private-mode.ts';
import { replaceFileAtomically } from '../../../platform/files/write-file-exclusive.ts';
import {
  MAX_MANIFEST_BYTES,
  manifestFormatOf,
  parseAgentManifest,
  parseManifestText,
} from '../../../runtime/manifests/agent-manifest.ts';
import { manifestDigest, signManifest } from '../../../runtime/manifests/manifest-signing.ts';
import { action, EXIT_OK } from '../cli-support.ts';
import { readSmallFile } from './read-small-file.ts';

/** A private key file is small; anything bigger is not one. */
const MAX_KEY_BYTES = 65_536;

/** What `keel agent sign` did. */
export interface SignedManifestFile {
  readonly id: string;
  readonly version: string;
  readonly keyId: string;
  /** SHA-256 (hex) of the signed bytes: the digest a node records when it deploys it. */
  readonly digest: string;
  /** Absolute path of the signed manifest written. */
  readonly outputFile: string;
}

/**
 * Where `keel agent sign` writes by default: the manifest's path with its extension replaced by
 * `.signed.json` (`agents/coder.yaml` → `agents/coder.signed.json`).
 *
 * @example
 * ```ts
 * signedManifestPath('agents/coder.yaml'); // 'agents/coder.signed.json'
 * ```
 */
export function signedManifestPath(manifestPath: string): string {
  const extension = extname(manifestPath);
  const stem = extension === '' ? manifestPath : manifestPath.slice(0, -extension.length);
  return `${stem}.signed.json`;
}

/**
 * Signs a manifest file (YAML when it ends in `.yaml` or `.yml`, else JSON) with a private key
 * file that only its owner can read (else `KEEL_CONFIG_PERMISSIONS`), and writes the signed
 * manifest as JSON to `outputPath` (default: {@link signedManifestPath}).
 *
 * @example
 * ```ts
 * const { outputFile, keyId } = await signManifestFile('agents/coder.yaml', 'keel-publisher.key');
 * ```
 */
export async function signManifestFile(
  manifestPath: string,
  keyPath: string,
  outputPath?: string,
  now: Date = new Date(),
): Promise<SignedManifestFile> {
  const outputFile = resolve(outputPath ?? signedManifestPath(manifestPath));
  for (const [path, what] of [
    [keyPath, 'the private key'],
    [manifestPath, 'the manifest it signs'],
  ] as const) {
    if (outputFile === resolve(path)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `the output file would replace ${what}`, {
        details: { path: outputFile },
        hint: 'give --out another file, or leave it out to write <manifest>.signed.json',
      });
    }
  }
  const format = manifestFormatOf(manifestPath);
  const privateKeyPem = await readSmallFile(keyPath, 'private key file', MAX_KEY_BYTES, (stats) =>
    assertPrivate(stats, keyPath, 'private key file', process.getuid?.()),
  );
  const text = await readSmallFile(manifestPath, 'manifest', MAX_MANIFEST_BYTES);
  const value = parseManifestText(text, format);
  if (typeof value === 'object' && value !== null && Object.hasOwn(value, 'signature')) {
    throw new KeelError('KEEL_MANIFEST_INVALID', `${manifestPath} is already a signed manifest`, {
      details: { path: manifestPath },
      hint: 'sign the manifest it was made from (the .yaml or .json file), not the .signed.json',
    });
  }
  const manifest = parseAgentManifest(value);
  const signed = signManifest(manifest, privateKeyPem, now);
  await replaceFileAtomically(outputFile, `${JSON.stringify(signed, null, 2)}\n`, 0o644);
  return {
    id: manifest.id,
    version: manifest.version,
    keyId: signed.signature.keyId,
    digest: manifestDigest(manifest),
    outputFile,
  };
}

interface SignOptions {
  readonly key: string;
  readonly out?: string;
  readonly json?: boolean;
}

/**
 * Adds `keel agent sign <manifest> --key <file>` to the `agent` command group.
 *
 * @example
 * ```ts
 * registerAgentSignCommand(program.command('agent'));
 * ```
 */
export function registerAgentSignCommand(agent: Command): void {
  agent
    .command('sign')
    .description('validate an agent manifest and sign it with a publisher key (keel keygen)')
    .argument('<manifest>', 'the manifest file (.yaml, .yml or .json)')
    .requiredOption(
      '--key <private-key-file>',
      'the private key file (mode 0600) keel keygen wrote',
    )
    .option('--out <file>', 'where to write the signed manifest (default: <manifest>.signed.json)')
    .option('--json', 'print machine-readable JSON instead of text')
    .action(
      action(async ({ output }, manifestPath: string, options: SignOptions) => {
        const result = await signManifestFile(manifestPath, options.key, options.out);
        if (output.json) {
          output.data(result);
          return EXIT_OK;
        }
        output.status('ok', `signed ${result.id} ${result.version} with key ${result.keyId}`);
        output.line(`  wrote ${result.outputFile}`);
        return EXIT_OK;
      }),
    );
}
