import assert from 'node:assert/strict';
import { chmod, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  signedManifestPath,
  signManifestFile,
} from '../../src/apps/cli/commands/agent-sign-command.ts';
import {
  trustedKeySnippet,
  writeSigningKeyFiles,
} from '../../src/apps/cli/commands/keygen-command.ts';
import { isKeelError } from '../../src/platform/errors/keel-error.ts';
import {
  parsePublicKey,
  verifySignedManifest,
} from '../../src/runtime/manifests/manifest-signing.ts';
import { rejectsWithCode } from '../support/assertions.ts';
import { runKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const MANIFEST_YAML = `apiVersion: keel.dev/v1
id: coder
version: 1.2.0
program:
  builtin: react-agent
trust: supervised
capabilities:
  - kind: llm.chat
`;

/** The permission bits of a file. */
async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('writeSigningKeyFiles', () => {
  it('writes a private key only its owner can read and a public key with its id', async () => {
    await using directory = await temporaryDirectory();
    const files = await writeSigningKeyFiles(directory.path, 'ci', false);
    assert.equal(files.privateKeyFile, join(directory.path, 'ci.key'));
    assert.equal(files.publicKeyFile, join(directory.path, 'ci.pub'));
    assert.equal(await modeOf(files.privateKeyFile), 0o600);
    assert.equal(await modeOf(files.publicKeyFile), 0o644);
    assert.match(await readFile(files.privateKeyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    const publicText = await readFile(files.publicKeyFile, 'utf8');
    assert.equal(publicText, `${files.publicKey}\n`);
    assert.deepEqual(parsePublicKey(publicText), {
      publicKey: files.publicKey,
      keyId: files.keyId,
    });
  });

  it('refuses to replace an existing key unless forced', async () => {
    await using directory = await temporaryDirectory();
    const first = await writeSigningKeyFiles(directory.path, 'ci', false);
    const before = await readFile(first.privateKeyFile, 'utf8');
    await rejectsWithCode(writeSigningKeyFiles(directory.path, 'ci', false), 'KEEL_CONFLICT');
    assert.equal(await readFile(first.privateKeyFile, 'utf8'), before);
    const second = await writeSigningKeyFiles(directory.path, 'ci', true);
    assert.notEqual(second.keyId, first.keyId);
    assert.equal(await modeOf(second.privateKeyFile), 0o600);
  });

  it('refuses when only the public key file exists, and leaves no private key behind', async () => {
    await using directory = await temporaryDirectory();
    await writeFile(join(directory.path, 'ci.pub'), 'stale\n');
    await rejectsWithCode(writeSigningKeyFiles(directory.path, 'ci', false), 'KEEL_CONFLICT');
    await assert.rejects(stat(join(directory.path, 'ci.key')), { code: 'ENOENT' });
  });

  it('refuses a key name that could escape the directory', async () => {
    await using directory = await temporaryDirectory();
    await rejectsWithCode(
      writeSigningKeyFiles(directory.path, '../ci', false),
      'KEEL_INVALID_ARGUMENT',
    );
  });

  it('prints the TOML an operator adds to trust the key', () => {
    assert.equal(
      trustedKeySnippet('ci', 'QUJD'),
      '[[agents.trusted_keys]]\nname = "ci"\npublic_key = "QUJD"',
    );
  });
});

describe('signManifestFile', () => {
  it('signs a YAML manifest into <name>.signed.json that a node trusting the key verifies', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    const manifestPath = join(directory.path, 'coder.yaml');
    await writeFile(manifestPath, MANIFEST_YAML);
    const result = await signManifestFile(manifestPath, key.privateKeyFile);
    assert.equal(result.outputFile, join(directory.path, 'coder.signed.json'));
    assert.equal(result.id, 'coder');
    assert.equal(result.version, '1.2.0');
    assert.equal(result.keyId, key.keyId);
    const text = await readFile(result.outputFile, 'utf8');
    assert.ok(text.endsWith('}\n'));
    const verified = verifySignedManifest(JSON.parse(text), {
      trustedKeys: [{ keyId: key.keyId, publicKey: key.publicKey }],
      allowUnsigned: false,
    });
    assert.equal(verified.manifest.id, 'coder');
    assert.equal(verified.keyId, key.keyId);
    assert.equal(verified.digest, result.digest);
  });

  it('writes to --out when given', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    const manifestPath = join(directory.path, 'coder.json');
    await writeFile(
      manifestPath,
      JSON.stringify({
        apiVersion: 'keel.dev/v1',
        id: 'coder',
        version: '2.0.0-rc.1',
        program: { module: './coder.ts' },
        trust: 'autonomous',
        capabilities: [],
      }),
    );
    const out = join(directory.path, 'release.json');
    const result = await signManifestFile(manifestPath, key.privateKeyFile, out);
    assert.equal(result.outputFile, out);
    assert.equal(result.version, '2.0.0-rc.1');
    assert.equal((await stat(out)).isFile(), true);
  });

  it('refuses an --out that would replace the manifest it signs, and writes nothing', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    const manifestPath = join(directory.path, 'coder.yaml');
    await writeFile(manifestPath, MANIFEST_YAML);
    await rejectsWithCode(
      signManifestFile(manifestPath, key.privateKeyFile, manifestPath),
      'KEEL_INVALID_ARGUMENT',
    );
    assert.equal(await readFile(manifestPath, 'utf8'), MANIFEST_YAML);
  });

  it('refuses a manifest path that is not a regular file before reading it', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    // A device behind a manifest's name: refused at once, not read until memory runs out.
    const device = join(directory.path, 'zero.json');
    await symlink('/dev/zero', device);
    const deployed = await runKeel([
      'agent',
      'deploy',
      device,
      '--data-dir',
      join(directory.path, 'data'),
    ]);
    assert.equal(deployed.code, 1);
    assert.match(deployed.stderr, /is not a file/);
    assert.match(deployed.stderr, /KEEL_INVALID_ARGUMENT/);
    await rejectsWithCode(
      signManifestFile(directory.path, key.privateKeyFile, join(directory.path, 'out.json')),
      'KEEL_INVALID_ARGUMENT',
    );
  });

  it('refuses a private key file that others can read, saying to chmod 600', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    await chmod(key.privateKeyFile, 0o640);
    const manifestPath = join(directory.path, 'coder.yaml');
    await writeFile(manifestPath, MANIFEST_YAML);
    await assert.rejects(
      signManifestFile(manifestPath, key.privateKeyFile),
      (error: unknown) =>
        isKeelError(error) &&
        error.code === 'KEEL_CONFIG_PERMISSIONS' &&
        /chmod 600/.test(error.hint),
    );
    await assert.rejects(stat(signedManifestPath(manifestPath)), { code: 'ENOENT' });
  });

  it('refuses an invalid manifest, naming the field, and writes nothing', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    const manifestPath = join(directory.path, 'coder.yaml');
    await writeFile(manifestPath, MANIFEST_YAML.replace('trust: supervised', 'trust: total'));
    const error = await rejectsWithCode(
      signManifestFile(manifestPath, key.privateKeyFile),
      'KEEL_MANIFEST_INVALID',
    );
    assert.equal(error.details.field, 'trust');
    await assert.rejects(stat(signedManifestPath(manifestPath)), { code: 'ENOENT' });
  });

  it('refuses to sign a file that is already signed', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    const manifestPath = join(directory.path, 'coder.yaml');
    await writeFile(manifestPath, MANIFEST_YAML);
    const { outputFile } = await signManifestFile(manifestPath, key.privateKeyFile);
    await rejectsWithCode(
      signManifestFile(outputFile, key.privateKeyFile),
      'KEEL_MANIFEST_INVALID',
    );
  });

  it('refuses a missing key file', async () => {
    await using directory = await temporaryDirectory();
    const manifestPath = join(directory.path, 'coder.yaml');
    await writeFile(manifestPath, MANIFEST_YAML);
    await rejectsWithCode(
      signManifestFile(manifestPath, join(directory.path, 'absent.key')),
      'KEEL_NOT_FOUND',
    );
  });

  it('names the signed file after the manifest without its extension', () => {
    assert.equal(signedManifestPath('agents/coder.yaml'), 'agents/coder.signed.json');
    assert.equal(signedManifestPath('agents/coder.json'), 'agents/coder.signed.json');
    assert.equal(signedManifestPath('coder'), 'coder.signed.json');
  });
});

/** Runs `keel …` (keygen, agent sign) in `cwd`, as a user would from that folder. */
function runCommands(args: readonly string[], cwd: string) {
  return runKeel(args, { cwd });
}

describe('keel keygen and keel agent sign', () => {
  it('create a key in the current directory, then sign with it', async () => {
    await using directory = await temporaryDirectory();
    const keygen = await runCommands(['keygen'], directory.path);
    assert.equal(keygen.code, 0, keygen.stderr);
    assert.match(keygen.stdout, /created signing key [0-9a-f]{16}/);
    assert.match(keygen.stdout, /\[\[agents\.trusted_keys\]\]\nname = "keel-publisher"\n/);
    assert.equal(await modeOf(join(directory.path, 'keel-publisher.key')), 0o600);

    await writeFile(join(directory.path, 'coder.yaml'), MANIFEST_YAML);
    const signed = await runCommands(
      ['agent', 'sign', 'coder.yaml', '--key', 'keel-publisher.key', '--json'],
      directory.path,
    );
    assert.equal(signed.code, 0, signed.stderr);
    const result = JSON.parse(signed.stdout) as { id: string; version: string; outputFile: string };
    assert.equal(result.id, 'coder');
    assert.equal(result.outputFile, join(directory.path, 'coder.signed.json'));
  });

  it('print JSON for keygen and fail with one line when the key exists', async () => {
    await using directory = await temporaryDirectory();
    const first = await runCommands(
      ['keygen', '--name', 'ci', '--out', 'keys', '--json'],
      directory.path,
    );
    assert.equal(first.code, 0, first.stderr);
    const files = JSON.parse(first.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(files).sort(), [
      'keyId',
      'privateKeyFile',
      'publicKey',
      'publicKeyFile',
    ]);
    assert.equal(files.privateKeyFile, join(directory.path, 'keys', 'ci.key'));
    const again = await runCommands(['keygen', '--name', 'ci', '--out', 'keys'], directory.path);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists .*\[KEEL_CONFLICT\]/);
  });

  it('say which path the user named is wrong instead of reporting a bug in Keel', async () => {
    await using directory = await temporaryDirectory();
    await writeFile(join(directory.path, 'a-file'), 'x');
    const onFile = await runCommands(['keygen', '--out', 'a-file'], directory.path);
    assert.equal(onFile.code, 1);
    assert.match(onFile.stderr, /a-file exists and is not a folder .*\[KEEL_INVALID_ARGUMENT\]\n$/);

    await writeSigningKeyFiles(directory.path, 'ci', false);
    await writeFile(join(directory.path, 'coder.yaml'), MANIFEST_YAML);
    const sign = (out: string) =>
      runCommands(
        ['agent', 'sign', 'coder.yaml', '--key', 'ci.key', '--out', out, '--json'],
        directory.path,
      );
    const missing = await sign('missing/coder.json');
    assert.equal(missing.code, 1);
    const missingError = (JSON.parse(missing.stdout) as { error: Record<string, unknown> }).error;
    assert.equal(missingError.code, 'KEEL_NOT_FOUND');
    // The file the user named, not the temporary file beside it.
    assert.equal(
      (missingError.details as Record<string, unknown>).path,
      join(directory.path, 'missing', 'coder.json'),
    );
    const onFolder = await sign('.');
    assert.equal(onFolder.code, 1);
    assert.match(
      onFolder.stdout,
      /"code":"KEEL_INVALID_ARGUMENT","message":"[^"]+ is a folder, not a file"/,
    );
    assert.doesNotMatch(missing.stdout + onFolder.stdout, /\.tmp|KEEL_INTERNAL/);
    // A key that is missing is not found; one under a file is a wrong path, not a missing one.
    const keyed = (key: string) =>
      runCommands(['agent', 'sign', 'coder.yaml', '--key', key], directory.path);
    assert.match(
      (await keyed('nokey.key')).stderr,
      /cannot be read \(ENOENT\).*\[KEEL_NOT_FOUND\]/,
    );
    assert.match(
      (await keyed('a-file/ci.key')).stderr,
      /cannot be read \(ENOTDIR\).*\[KEEL_INVALID_ARGUMENT\]/,
    );
  });

  it('refuse to sign with a group-readable key, with exit code 1', async () => {
    await using directory = await temporaryDirectory();
    const key = await writeSigningKeyFiles(directory.path, 'ci', false);
    await chmod(key.privateKeyFile, 0o644);
    await writeFile(join(directory.path, 'coder.yaml'), MANIFEST_YAML);
    const run = await runCommands(
      ['agent', 'sign', 'coder.yaml', '--key', 'ci.key'],
      directory.path,
    );
    assert.equal(run.code, 1);
    assert.match(run.stderr, /chmod 600 .*\[KEEL_CONFIG_PERMISSIONS\]/);
  });
});
