import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { connect } from 'node:tls';
import { childEnvironment, KEEL_BIN, runKeel, startKeel } from '../support/keel-process.ts';
import { selfSignedCertificate } from '../support/self-signed-certificate.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

/** Asserts the one-line error contract: exit 1, exactly one line on stderr naming the code. */
function assertOneLineError(
  result: { code: number | null; stderr: string; stdout: string },
  code: string,
): string {
  assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
  assert.match(lines[0] ?? '', new RegExp(`^keel: .+ — .+ \\[${code}\\]$`));
  assert.equal(result.stdout, '');
  return lines[0] ?? '';
}

describe('keel start', () => {
  it('boots on the embedded default, answers health checks and stops cleanly on SIGTERM', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    const keel = await startKeel(['--data-dir', dataDirectory, '--port', '0']);
    assert.match(keel.readyLine, /^Keel ready at http:\/\/127\.0\.0\.1:\d+$/);
    const live = await fetch(`${keel.url}/health/live`);
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { status: 'live' });
    const ready = await fetch(`${keel.url}/health/ready`);
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as {
      status: string;
      components: Array<{ name: string; ready: boolean }>;
    };
    assert.equal(body.status, 'ready');
    assert.deepEqual(
      body.components.map((component) => [component.name, component.ready]),
      [
        ['storage', true],
        ['bus', true],
        ['kernel', true],
        ['node', true],
      ],
    );
    const missing = await fetch(`${keel.url}/nothing-here`);
    assert.equal(missing.status, 404);
    assert.equal(
      ((await missing.json()) as { error: { code: string } }).error.code,
      'KEEL_NOT_FOUND',
    );
    const stopped = await keel.stop('SIGTERM');
    assert.deepEqual(stopped, { code: 0, signal: null }, keel.stderr());
    const tail = await runKeel(['audit', 'tail', '--data-dir', dataDirectory, '--json']);
    const kinds = tail.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { kind: string }).kind);
    assert.deepEqual(kinds, ['config.change', 'node.start', 'node.stop']);
  });

  it('stops on SIGINT with exit code 0, and starts again on the same data directory', async () => {
    await using directory = await temporaryDirectory();
    const first = await startKeel(['--data-dir', directory.path, '--port', '0']);
    assert.deepEqual(await first.stop('SIGINT'), { code: 0, signal: null });
    const second = await startKeel(['--data-dir', directory.path, '--port', '0']);
    assert.deepEqual(await second.stop('SIGINT'), { code: 0, signal: null });
  });

  it('creates a private data directory: 0700 directory, 0600 files', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'fresh');
    const keel = await startKeel(['--data-dir', dataDirectory, '--port', '0']);
    try {
      assert.equal((await stat(dataDirectory)).mode & 0o777, 0o700);
      for (const file of ['config.toml', 'secrets.toml', 'keel.db']) {
        assert.equal((await stat(join(dataDirectory, file))).mode & 0o777, 0o600, file);
      }
    } finally {
      await keel.stop();
    }
  });

  it('prints a JSON ready event with --json', async () => {
    await using directory = await temporaryDirectory();
    const keel = await startKeel(['--data-dir', directory.path, '--port', '0', '--json']);
    try {
      const event = JSON.parse(keel.readyLine) as {
        event: string;
        url: string;
        nodeId: string;
        pid: number;
      };
      assert.equal(event.event, 'ready');
      assert.match(event.nodeId, /^node_[0-9a-f]{32}$/);
      assert.equal(event.pid, keel.child.pid);
    } finally {
      await keel.stop();
    }
  });

  it('refuses a second node on the same data directory', async () => {
    await using directory = await temporaryDirectory();
    const keel = await startKeel(['--data-dir', directory.path, '--port', '0']);
    try {
      const second = await runKeel(['start', '--data-dir', directory.path, '--port', '0']);
      assertOneLineError(second, 'KEEL_DATA_DIR_LOCKED');
    } finally {
      await keel.stop();
    }
  });

  it('says the port is in use, and writes nothing', async () => {
    await using directory = await temporaryDirectory();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const dataDirectory = join(directory.path, 'never-created');
      const result = await runKeel(['start', '--data-dir', dataDirectory, '--port', String(port)]);
      const line = assertOneLineError(result, 'KEEL_PORT_IN_USE');
      assert.match(line, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
      assert.deepEqual(await readdir(directory.path), [], 'no data directory was created');
    } finally {
      blocker.close();
    }
  });

  it('refuses a config file with mode 0644, saying which chmod fixes it', async () => {
    await using directory = await temporaryDirectory();
    await chmod(directory.path, 0o700);
    const configFile = join(directory.path, 'config.toml');
    await writeFile(configFile, '[node]\nport = 0\n', { mode: 0o644 });
    await chmod(configFile, 0o644);
    const result = await runKeel(['start', '--data-dir', directory.path]);
    const line = assertOneLineError(result, 'KEEL_CONFIG_PERMISSIONS');
    assert.match(line, /mode 0644/);
    assert.match(line, /chmod 600/);
    assert.deepEqual(await readdir(directory.path), ['config.toml']);
  });

  it('names the bad key of a malformed config file', async () => {
    await using directory = await temporaryDirectory();
    await chmod(directory.path, 0o700);
    await writeFile(join(directory.path, 'config.toml'), '[node]\nport = "seventy"\n', {
      mode: 0o600,
    });
    const result = await runKeel(['start', '--data-dir', directory.path]);
    assert.match(assertOneLineError(result, 'KEEL_CONFIG_INVALID'), /node\.port in .*config\.toml/);
  });

  it('refuses an unknown flag with exit code 2', async () => {
    const result = await runKeel(['start', '--prot', '80']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, /unknown option '--prot'.*Did you mean --port\?.*\[KEEL_USAGE\]/);
  });

  it('answers a command line it cannot use with exit code 2, in JSON when asked', async () => {
    const unknown = await runKeel(['runs', 'list', '--limit', 'many', '--json']);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, '');
    const error = (JSON.parse(unknown.stdout) as { error: Record<string, unknown> }).error;
    assert.equal(error.code, 'KEEL_USAGE');
    assert.match(String(error.message), /--limit <count>' argument 'many' is invalid/);
    assert.equal(error.hint, 'run `keel runs list --help` for usage');
    // Checked by the command itself, before it looks for a node or a data directory.
    for (const args of [
      ['run', 'demo', '  \n '],
      ['budget', 'set', 'agent:demo'],
      ['usage', '--by', 'colour'],
    ]) {
      const result = await runKeel(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /\[KEEL_USAGE\]\n$/);
    }
  });

  it('exits quietly when the reader of its output has gone (keel … | head -1)', async () => {
    const child = spawn(process.execPath, [KEEL_BIN, '--help'], {
      env: childEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Closed before the command writes a byte: every write fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(stderr, '', 'no EPIPE stack');
    assert.equal(code, 0);
  });

  it('says when the data directory cannot be written', async () => {
    await using directory = await temporaryDirectory();
    const file = join(directory.path, 'a-file');
    await writeFile(file, 'x');
    const result = await runKeel(['start', '--data-dir', join(file, 'keel'), '--port', '0']);
    assertOneLineError(result, 'KEEL_DATA_DIR_UNWRITABLE');
  });

  it('refuses a corrupted database and leaves it as it was', async () => {
    await using directory = await temporaryDirectory();
    const first = await startKeel(['--data-dir', directory.path, '--port', '0']);
    await first.stop();
    const database = join(directory.path, 'keel.db');
    const garbage = Buffer.alloc(16_384, 0x5a);
    await writeFile(database, garbage);
    const result = await runKeel(['start', '--data-dir', directory.path, '--port', '0']);
    assert.match(assertOneLineError(result, 'KEEL_STORAGE_CORRUPT'), /keel restore/);
    assert.deepEqual(await readFile(database), garbage);
    const lock = await readdir(directory.path);
    assert.ok(!lock.includes('keel.lock'), 'the lock was released');
  });

  it('refuses to start a new chain when the audit key is lost or wrong', async () => {
    await using directory = await temporaryDirectory();
    const first = await startKeel(['--data-dir', directory.path, '--port', '0']);
    assert.equal((await first.stop()).code, 0);
    const secrets = join(directory.path, 'secrets.toml');
    const original = await readFile(secrets, 'utf8');
    await rm(secrets);
    const lost = await runKeel(['start', '--data-dir', directory.path, '--port', '0']);
    assert.match(
      assertOneLineError(lost, 'KEEL_AUDIT_KEY_MISSING'),
      /keel\.db exists, but .*secrets\.toml, with the audit key that signs its audit log, is missing/,
    );
    assert.ok(!(await readdir(directory.path)).includes('secrets.toml'), 'no new key was written');
    const wrong = await runKeel(['start', '--data-dir', directory.path, '--port', '0'], {
      env: childEnvironment({ KEEL_SECRET_AUDIT_KEY: 'cd'.repeat(32) }),
    });
    assert.match(
      assertOneLineError(wrong, 'KEEL_AUDIT_KEY_MISSING'),
      /does not match the audit log/,
    );
    await writeFile(secrets, original, { mode: 0o600 });
    const restored = await startKeel(['--data-dir', directory.path, '--port', '0']);
    assert.equal((await restored.stop()).code, 0);
    const verify = await runKeel(['audit', 'verify', '--data-dir', directory.path]);
    assert.equal(verify.code, 0, verify.stdout);
  });

  it('refuses plain HTTP on a non-loopback address', async () => {
    await using directory = await temporaryDirectory();
    const result = await runKeel([
      'start',
      '--data-dir',
      join(directory.path, 'k'),
      '--host',
      '0.0.0.0',
      '--port',
      '0',
    ]);
    assertOneLineError(result, 'KEEL_TLS_REQUIRED');
  });

  it('serves TLS 1.2+ when configured, and refuses older protocol versions', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    await mkdir(dataDirectory, { mode: 0o700 });
    await selfSignedCertificate(dataDirectory);
    await writeFile(
      join(dataDirectory, 'config.toml'),
      '[tls]\ncert_file = "tls.crt"\nkey_file = "tls.key"\n',
      { mode: 0o600 },
    );
    const keel = await startKeel(['--data-dir', dataDirectory, '--port', '0']);
    try {
      assert.match(keel.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(keel.url).port);
      const ca = await readFile(join(dataDirectory, 'tls.crt'));
      const negotiated = await new Promise<string | null>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1.2' }, () => {
          resolve(socket.getProtocol());
          socket.end();
        });
        socket.on('error', reject);
      });
      assert.ok(negotiated === 'TLSv1.2' || negotiated === 'TLSv1.3', String(negotiated));
      const old = await new Promise<string>((resolve) => {
        // SECLEVEL=0 lets this client offer TLS 1.1, so a refusal comes from the server.
        const socket = connect(
          {
            host: '127.0.0.1',
            port,
            ca,
            minVersion: 'TLSv1',
            maxVersion: 'TLSv1.1',
            ciphers: 'DEFAULT@SECLEVEL=0',
          },
          () => {
            resolve(`connected with ${String(socket.getProtocol())}`);
            socket.end();
          },
        );
        socket.on('error', (error) => resolve(error.message));
      });
      assert.match(old, /alert protocol version|unsupported protocol|wrong version/i);
    } finally {
      await keel.stop();
    }
  });

  it('never prints a secret, even one pasted into the wrong variable', async () => {
    await using directory = await temporaryDirectory();
    const secret = 'sk-test-7d1f0a9be34c';
    const result = await runKeel(['start', '--data-dir', join(directory.path, 'k')], {
      env: childEnvironment({ KEEL_SECRET_OPENAI_API_KEY: secret, KEEL_PORT: secret }),
    });
    assertOneLineError(result, 'KEEL_CONFIG_INVALID');
    assert.ok(!result.stderr.includes(secret), result.stderr);
    assert.match(result.stderr, /KEEL_PORT must be a whole number, got '\[REDACTED\]'/);
  });

  it('refuses a foreign SQLite file in place of the database', async () => {
    await using directory = await temporaryDirectory();
    await chmod(directory.path, 0o700);
    await writeFile(join(directory.path, 'secrets.toml'), `audit_key = "${'ab'.repeat(32)}"\n`, {
      mode: 0o600,
    });
    const foreign = new DatabaseSync(join(directory.path, 'keel.db'));
    foreign.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY)');
    foreign.close();
    const result = await runKeel(['start', '--data-dir', directory.path, '--port', '0']);
    assert.match(assertOneLineError(result, 'KEEL_STORAGE_CORRUPT'), /not a Keel database/);
  });
});
