import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { claimDataDirectory } from './data-directory.ts';
import { AUDIT_KEY_SECRET, loadConfiguration, resolveDataDirectory } from './load-configuration.ts';

const KEY = 'ab'.repeat(32);

async function privateDirectory(parent: string, name = 'keel'): Promise<string> {
  const path = join(parent, name);
  await mkdir(path, { mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}

async function writePrivate(path: string, text: string, mode = 0o600): Promise<void> {
  await writeFile(path, text, { mode });
  await chmod(path, mode);
}

describe('loadConfiguration', () => {
  it('resolves the data directory from the flag, then KEEL_HOME, then ~/.keel', () => {
    assert.equal(
      resolveDataDirectory({ dataDirectory: '/a', environment: { KEEL_HOME: '/b' } }),
      '/a',
    );
    assert.equal(resolveDataDirectory({ environment: { KEEL_HOME: '/b' } }), '/b');
    assert.equal(
      resolveDataDirectory({ environment: {}, homeDirectory: '/home/ana' }),
      '/home/ana/.keel',
    );
  });

  it('uses defaults for a missing data directory and reports what is missing', async () => {
    await using directory = await temporaryDirectory();
    const loaded = await loadConfiguration({
      dataDirectory: join(directory.path, 'new'),
      environment: {},
    });
    assert.deepEqual(loaded.missing, { directory: true, configFile: true, secretsFile: true });
    assert.equal(loaded.configuration.node.port, 7420);
    assert.equal(loaded.configuration.node.host, '127.0.0.1');
    assert.equal(loaded.configuration.storage.synchronous, 'full');
    assert.ok(Object.isFrozen(loaded.configuration.node));
    assert.match(loaded.secrets.require(AUDIT_KEY_SECRET).reveal(), /^[0-9a-f]{64}$/);
    assert.deepEqual(await readdir(directory.path), [], 'loading writes nothing');
  });

  it('creates a private data directory, config and secrets that load again', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'deep', 'keel');
    const loaded = await loadConfiguration({ dataDirectory, environment: {} });
    await (await claimDataDirectory(loaded)).release();
    assert.equal((await stat(dataDirectory)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dataDirectory, 'config.toml'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dataDirectory, 'secrets.toml'))).mode & 0o777, 0o600);
    const again = await loadConfiguration({ dataDirectory, environment: {} });
    assert.deepEqual(again.missing, { directory: false, configFile: false, secretsFile: false });
    assert.equal(
      again.secrets.require(AUDIT_KEY_SECRET).reveal(),
      loaded.secrets.require(AUDIT_KEY_SECRET).reveal(),
      'the generated audit key was persisted',
    );
    assert.equal(again.digest, loaded.digest);
  });

  it('never replaces files another process created after loading: the audit key stays the first one', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'raced');
    const first = await loadConfiguration({ dataDirectory, environment: {} });
    const second = await loadConfiguration({ dataDirectory, environment: {} });
    assert.notEqual(
      first.secrets.require(AUDIT_KEY_SECRET).reveal(),
      second.secrets.require(AUDIT_KEY_SECRET).reveal(),
    );
    await (await claimDataDirectory(first)).release();
    const error = await rejectsWithCode(claimDataDirectory(second), 'KEEL_CONFLICT');
    assert.match(error.message, /another Keel process initialised/);
    const reloaded = await loadConfiguration({ dataDirectory, environment: {} });
    assert.equal(
      reloaded.secrets.require(AUDIT_KEY_SECRET).reveal(),
      first.secrets.require(AUDIT_KEY_SECRET).reveal(),
    );
    assert.ok(!(await readdir(dataDirectory)).includes('keel.lock'), 'the lock was released');
  });

  it('applies the file, then the environment, then the flags', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    await writePrivate(
      join(dataDirectory, 'config.toml'),
      '[node]\nport = 9000\nhost = "127.0.0.2"\n[log]\nlevel = "warn"\n',
    );
    await writePrivate(join(dataDirectory, 'secrets.toml'), `audit_key = "${KEY}"\n`);
    const fromFile = await loadConfiguration({ dataDirectory, environment: {} });
    assert.equal(fromFile.configuration.node.port, 9000);
    const fromEnvironment = await loadConfiguration({
      dataDirectory,
      environment: { KEEL_PORT: '9100', KEEL_LOG_LEVEL: 'debug' },
    });
    assert.equal(fromEnvironment.configuration.node.port, 9100);
    assert.equal(fromEnvironment.configuration.log.level, 'debug');
    const fromFlags = await loadConfiguration({
      dataDirectory,
      environment: { KEEL_PORT: '9100' },
      overrides: { port: 0 },
    });
    assert.equal(fromFlags.configuration.node.port, 0);
    assert.equal(fromFlags.configuration.node.host, '127.0.0.2');
    assert.notEqual(fromFlags.digest, fromFile.digest);
  });

  it('refuses a config file readable by others, saying how to fix it', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    const configFile = join(dataDirectory, 'config.toml');
    await writePrivate(configFile, '', 0o644);
    const error = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_PERMISSIONS',
    );
    assert.match(error.message, /mode 0644/);
    assert.match((error as unknown as { hint: string }).hint, /chmod 600/);
  });

  it('refuses a data directory open to others and a secrets file readable by the group', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    await chmod(dataDirectory, 0o755);
    await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_PERMISSIONS',
    );
    await chmod(dataDirectory, 0o700);
    await writePrivate(join(dataDirectory, 'secrets.toml'), `audit_key = "${KEY}"\n`, 0o640);
    await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_PERMISSIONS',
    );
  });

  it('refuses a symbolic link in place of the config file', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    const real = join(directory.path, 'elsewhere.toml');
    await writePrivate(real, '[node]\nport = 1\n');
    await symlink(real, join(dataDirectory, 'config.toml'));
    const error = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_PERMISSIONS',
    );
    assert.match(error.message, /is a symbolic link/);
  });

  it('never quotes the secrets file when it is not valid TOML', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    await writePrivate(
      join(dataDirectory, 'secrets.toml'),
      'openai_api_key = sk-live-ABCDEFG123456\n',
    );
    const error = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(error.message, /secrets file .* is not valid TOML at line 1, column \d+$/);
    assert.ok(
      !JSON.stringify(error).includes('sk-live') &&
        !String((error as Error).cause ?? '').includes('sk-live'),
    );
  });

  it('refuses a *_FILE secret that others can write', async () => {
    await using directory = await temporaryDirectory();
    const secretFile = join(directory.path, 'token');
    await writeFile(secretFile, 'value\n');
    await chmod(secretFile, 0o666);
    await rejectsWithCode(
      loadConfiguration({
        dataDirectory: join(directory.path, 'k'),
        environment: { KEEL_SECRET_TOKEN_FILE: secretFile },
      }),
      'KEEL_CONFIG_PERMISSIONS',
    );
    await chmod(secretFile, 0o644);
    const loaded = await loadConfiguration({
      dataDirectory: join(directory.path, 'k'),
      environment: { KEEL_SECRET_TOKEN_FILE: secretFile },
    });
    assert.equal(loaded.secrets.require('token').reveal(), 'value');
  });

  it('refuses files owned by another user', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    const ownUid = (await stat(dataDirectory)).uid;
    const error = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {}, uid: ownUid + 1 }),
      'KEEL_CONFIG_PERMISSIONS',
    );
    assert.match(error.message, /belongs to uid/);
  });

  it('names the key and file of invalid configuration', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    const configFile = join(dataDirectory, 'config.toml');
    await writePrivate(configFile, '[node]\nport = "eighty"\n');
    const wrongType = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(wrongType.message, /^node\.port in .*config\.toml: /);
    await writePrivate(configFile, '[node]\nprot = 80\n');
    const typo = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(typo.message, /unknown key\(s\) prot/);
    await writePrivate(configFile, '[node\nport = 80\n');
    const syntax = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(syntax.message, /not valid TOML at line 1/);
    // A watchdog that would kill every idle worker between two of its heartbeats.
    await writePrivate(configFile, '[runtime]\nheartbeat_interval_ms = 15000\n');
    const watchdog = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(
      watchdog.message,
      /^runtime\.watchdog_timeout_ms \(10000, from .*config\.toml\) must be at least twice runtime\.heartbeat_interval_ms \(15000/,
    );
  });

  it('names the environment variable or flag that is invalid', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'none');
    const variable = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: { KEEL_PORT: 'http' } }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(variable.message, /^KEEL_PORT must be a whole number/);
    const level = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: { KEEL_LOG_LEVEL: 'loud' } }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(level.message, /^KEEL_LOG_LEVEL: /);
    const flag = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {}, overrides: { port: 70_000 } }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(flag.message, /^--port: /);
  });

  it('refuses production mode together with development mode, naming where each came from', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'none');
    const flags = await rejectsWithCode(
      loadConfiguration({
        dataDirectory,
        environment: {},
        overrides: { production: true, development: true },
      }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(flags.message, /production mode \(--production\) .*from --development/);
    const mixed = await rejectsWithCode(
      loadConfiguration({
        dataDirectory,
        environment: { KEEL_PRODUCTION: '1' },
        overrides: { development: true },
      }),
      'KEEL_CONFIG_INVALID',
    );
    assert.match(mixed.message, /production mode \(KEEL_PRODUCTION\)/);
  });

  it('reads secrets from the file, KEEL_SECRET_* and KEEL_SECRET_*_FILE, environment first', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    await writePrivate(
      join(dataDirectory, 'secrets.toml'),
      `audit_key = "${KEY}"\nopenai_api_key = "from-file"\nother = "kept"\n`,
    );
    const secretFile = join(directory.path, 'token');
    await writeFile(secretFile, 'from-secret-file\n');
    const loaded = await loadConfiguration({
      dataDirectory,
      environment: {
        KEEL_SECRET_OPENAI_API_KEY: 'from-env',
        KEEL_SECRET_GITHUB_TOKEN_FILE: secretFile,
      },
    });
    assert.equal(loaded.secrets.require('openai_api_key').reveal(), 'from-env');
    assert.equal(loaded.secrets.require('github_token').reveal(), 'from-secret-file');
    assert.equal(loaded.secrets.require('other').reveal(), 'kept');
    assert.deepEqual(loaded.secrets.names(), [
      'audit_key',
      'github_token',
      'openai_api_key',
      'other',
    ]);
  });

  it('never prints secret values', async () => {
    await using directory = await temporaryDirectory();
    const loaded = await loadConfiguration({
      dataDirectory: join(directory.path, 'x'),
      environment: { KEEL_SECRET_TOKEN: 'hunter2-very-secret' },
    });
    const secret = loaded.secrets.require('token');
    assert.equal(String(secret), '[REDACTED]');
    assert.equal(JSON.stringify({ secret }), '{"secret":"[REDACTED]"}');
    assert.doesNotMatch(inspect(loaded, { depth: 10 }), /hunter2/);
  });

  it('refuses a secrets file without an audit key, and a malformed key', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = await privateDirectory(directory.path);
    await writePrivate(join(dataDirectory, 'secrets.toml'), 'openai_api_key = "x"\n');
    const missing = await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: {} }),
      'KEEL_AUDIT_KEY_MISSING',
    );
    assert.match((missing as unknown as { hint: string }).hint, /openssl rand -hex 32/);
    await rejectsWithCode(
      loadConfiguration({ dataDirectory, environment: { KEEL_SECRET_AUDIT_KEY: 'short' } }),
      'KEEL_CONFIG_INVALID',
    );
  });

  it('says clearly when the data directory cannot be created, and writes nothing', async () => {
    await using directory = await temporaryDirectory();
    const blocker = join(directory.path, 'file');
    await writeFile(blocker, 'not a directory');
    const underFile = await rejectsWithCode(
      loadConfiguration({ dataDirectory: join(blocker, 'keel'), environment: {} }),
      'KEEL_DATA_DIR_UNWRITABLE',
    );
    assert.match(underFile.message, /a parent of it is a file/);
    assert.equal(await readFile(blocker, 'utf8'), 'not a directory');
    // Root may write anywhere, so make creation fail by putting a file where the directory goes
    // after loading.
    const dataDirectory = join(directory.path, 'late');
    const loaded = await loadConfiguration({ dataDirectory, environment: {} });
    await writeFile(dataDirectory, 'in the way');
    const blocked = await rejectsWithCode(claimDataDirectory(loaded), 'KEEL_DATA_DIR_UNWRITABLE');
    assert.match(
      blocked.message,
      /cannot write the data directory .*late \(a file is in the way\)/,
    );
    assert.equal(await readFile(dataDirectory, 'utf8'), 'in the way');
  });

  it('refuses a data directory path that is a file', async () => {
    await using directory = await temporaryDirectory();
    const file = join(directory.path, 'file');
    await writeFile(file, 'x');
    await rejectsWithCode(
      loadConfiguration({ dataDirectory: file, environment: {} }),
      'KEEL_DATA_DIR_UNWRITABLE',
    );
  });
});
