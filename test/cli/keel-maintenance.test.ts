import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import {
  loadMigrations,
  SQLITE_MIGRATIONS_DIRECTORY,
} from '../../src/platform/storage/sqlite/sqlite-migrator.ts';
import { childEnvironment, KEEL_BIN, runKeel, startKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

/** Starts and stops a node twice so that the data directory has a few audit entries. */
async function dataDirectoryWithHistory(path: string): Promise<void> {
  for (let index = 0; index < 2; index += 1) {
    const keel = await startKeel(['--data-dir', path, '--port', '0']);
    assert.equal((await keel.stop()).code, 0);
  }
}

/** Edits the database behind Keel's back, as an attacker with file access could. */
function tamper(path: string, sql: string): void {
  const database = new DatabaseSync(join(path, 'keel.db'));
  try {
    database.exec(
      'DROP TRIGGER audit_log_is_append_only_update; DROP TRIGGER audit_log_is_append_only_delete;',
    );
    database.exec(sql);
  } finally {
    database.close();
  }
}

describe('keel audit', () => {
  it('verifies an intact chain and exits 0', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    const human = await runKeel(['audit', 'verify', '--data-dir', directory.path]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /audit chain intact: 5 entries, head #5 [0-9a-f]{16}…/);
    const json = await runKeel(['audit', 'verify', '--data-dir', directory.path, '--json']);
    assert.deepEqual(
      (({ intact, checked, total }) => ({ intact, checked, total }))(
        JSON.parse(json.stdout) as { intact: boolean; checked: number; total: number },
      ),
      { intact: true, checked: 5, total: 5 },
    );
  });

  it('refuses direct edits at the database level (append-only triggers)', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    const database = new DatabaseSync(join(directory.path, 'keel.db'));
    try {
      assert.throws(
        () => database.exec("UPDATE audit_log SET outcome = 'x' WHERE seq = 1"),
        /append-only/,
      );
      assert.throws(() => database.exec('DELETE FROM audit_log WHERE seq = 1'), /append-only/);
    } finally {
      database.close();
    }
  });

  it('names the first modified entry and exits 1', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    tamper(directory.path, `UPDATE audit_log SET data = '{"nodeId":"forged"}' WHERE seq = 3`);
    const result = await runKeel(['audit', 'verify', '--data-dir', directory.path]);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /audit chain broken at entry #3 \(hash-mismatch\): the entry was modified after it was written; 2 entries before it verify/,
    );
    const json = await runKeel(['audit', 'verify', '--data-dir', directory.path, '--json']);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as {
      intact: boolean;
      firstBreak: { seq: number; reason: string };
    };
    assert.deepEqual(
      [report.intact, report.firstBreak.seq, report.firstBreak.reason],
      [false, 3, 'hash-mismatch'],
    );
  });

  it('detects a deleted entry as a gap in the sequence', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    tamper(directory.path, 'DELETE FROM audit_log WHERE seq = 2');
    const deleted = await runKeel(['audit', 'verify', '--data-dir', directory.path, '--json']);
    assert.equal(deleted.code, 1);
    assert.deepEqual(
      (JSON.parse(deleted.stdout) as { firstBreak: { seq: number; reason: string } }).firstBreak,
      { seq: 3, reason: 'sequence-gap', expected: '2', actual: '3' },
    );
  });

  it('detects an entry whose hash was recomputed without the key', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    // An attacker rewrites entry 4 and, lacking the HMAC key, puts a plain SHA-256 in its place.
    tamper(
      directory.path,
      `UPDATE audit_log SET outcome = 'forged', hash = lower(hex(randomblob(32))) WHERE seq = 4`,
    );
    const result = await runKeel(['audit', 'verify', '--data-dir', directory.path, '--json']);
    assert.equal(result.code, 1);
    assert.equal((JSON.parse(result.stdout) as { firstBreak: { seq: number } }).firstBreak.seq, 4);
  });

  it('shows the latest entries as a table or JSON lines', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    const table = await runKeel(['audit', 'tail', '-n', '2', '--data-dir', directory.path]);
    assert.equal(table.code, 0);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^SEQ\s+TIME\s+KIND\s+ACTOR\s+SUBJECT\s+OUTCOME$/);
    assert.match(lines[1] ?? '', /^#4 .*node\.start/);
    assert.match(lines[2] ?? '', /^#5 .*node\.stop/);
    const json = await runKeel([
      'audit',
      'tail',
      '--lines',
      '1',
      '--json',
      '--data-dir',
      directory.path,
    ]);
    const record = JSON.parse(json.stdout) as { seq: number; kind: string; hash: string };
    assert.deepEqual([record.seq, record.kind], [5, 'node.stop']);
    const invalid = await runKeel(['audit', 'tail', '-n', '0']);
    assert.equal(invalid.code, 2);
  });

  it('follows new entries until interrupted, then exits 0', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    const follower = spawn(
      process.execPath,
      [KEEL_BIN, 'audit', 'tail', '--follow', '--json', '-n', '1', '--data-dir', directory.path],
      {
        env: childEnvironment(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    follower.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    const exited = once(follower, 'exit');
    const waitFor = async (count: number): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (stdout.trim().split('\n').filter(Boolean).length < count && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await waitFor(1);
    // A node starting and stopping appends node.start and node.stop, which the follower prints.
    const keel = await startKeel(['--data-dir', directory.path, '--port', '0']);
    await keel.stop();
    await waitFor(3);
    follower.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    const kinds = stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { kind: string }).kind);
    assert.deepEqual(kinds.slice(0, 3), ['node.stop', 'node.start', 'node.stop']);
  });

  it('says clearly when there is no data directory', async () => {
    await using directory = await temporaryDirectory();
    const result = await runKeel(['audit', 'verify', '--data-dir', join(directory.path, 'none')]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^keel: there is no Keel data directory at .*none — .* \[KEEL_NOT_FOUND\]\n$/,
    );
  });
});

describe('keel backup and restore', () => {
  it('backs up a running node, refuses to restore while it runs, and restores once stopped', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    const backupFile = join(directory.path, 'backup.db');
    await dataDirectoryWithHistory(dataDirectory);
    const keel = await startKeel(['--data-dir', dataDirectory, '--port', '0']);
    try {
      const backup = await runKeel(['backup', backupFile, '--data-dir', dataDirectory, '--json']);
      assert.equal(backup.code, 0, backup.stderr);
      const result = JSON.parse(backup.stdout) as {
        file: string;
        audit: { intact: boolean; checked: number };
      };
      assert.equal(result.file, backupFile);
      assert.deepEqual([result.audit.intact, result.audit.checked], [true, 6]);
      const again = await runKeel(['backup', backupFile, '--data-dir', dataDirectory]);
      assert.equal(again.code, 1);
      assert.match(
        again.stderr,
        /already exists — choose another file or pass --force \[KEEL_CONFLICT\]/,
      );
      const whileRunning = await runKeel(['restore', backupFile, '--data-dir', dataDirectory]);
      assert.equal(whileRunning.code, 1);
      assert.match(whileRunning.stderr, /\[KEEL_DATA_DIR_LOCKED\]/);
    } finally {
      assert.equal((await keel.stop()).code, 0);
    }
    const restored = await runKeel(['restore', backupFile, '--data-dir', dataDirectory]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /restored .*backup\.db \(audit chain verified: 6 entries\)/);
    assert.match(restored.stdout, /the previous database is kept at .*keel\.db\.pre-restore-/);
    const verify = await runKeel(['audit', 'verify', '--data-dir', dataDirectory, '--json']);
    const chain = JSON.parse(verify.stdout) as { intact: boolean; total: number };
    assert.deepEqual(
      [chain.intact, chain.total],
      [true, 7],
      'the six backed-up entries and node.restore',
    );
    const tail = await runKeel(['audit', 'tail', '-n', '1', '--json', '--data-dir', dataDirectory]);
    assert.equal((JSON.parse(tail.stdout) as { kind: string }).kind, 'node.restore');
    const keelAgain = await startKeel(['--data-dir', dataDirectory, '--port', '0']);
    assert.equal((await keelAgain.stop()).code, 0);
  });

  it('refuses to restore a backup whose audit chain does not verify, changing nothing', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    const backupFile = join(directory.path, 'backup.db');
    await dataDirectoryWithHistory(dataDirectory);
    assert.equal((await runKeel(['backup', backupFile, '--data-dir', dataDirectory])).code, 0);
    const database = new DatabaseSync(backupFile);
    database.exec(
      "DROP TRIGGER audit_log_is_append_only_update; UPDATE audit_log SET actor = 'operator:mallory' WHERE seq = 2",
    );
    database.close();
    const before = await readFile(join(dataDirectory, 'keel.db'));
    const result = await runKeel(['restore', backupFile, '--data-dir', dataDirectory]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /does not verify with this node's audit key \(first break at entry #2, hash-mismatch\).*\[KEEL_RESTORE_REFUSED\]/,
    );
    assert.deepEqual(await readFile(join(dataDirectory, 'keel.db')), before);
    assert.ok(!(await readdir(dataDirectory)).some((name) => name.includes('pre-restore')));
  });

  it('refuses to restore a file that is not a database', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    await dataDirectoryWithHistory(dataDirectory);
    const junk = join(directory.path, 'junk.db');
    await writeFile(
      junk,
      'not a database at all, just text that is long enough to look like a file',
    );
    const result = await runKeel(['restore', junk, '--data-dir', dataDirectory]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /\[KEEL_RESTORE_REFUSED\]/);
  });
});

describe('keel migrate and doctor', () => {
  it('reports and applies migrations', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    const applied = await runKeel(['migrate', '--data-dir', dataDirectory, '--json']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(
      (JSON.parse(applied.stdout) as { applied: Array<{ version: number }> }).applied.map(
        (migration) => migration.version,
      ),
      loadMigrations(SQLITE_MIGRATIONS_DIRECTORY).map((migration) => migration.version),
    );
    const status = await runKeel(['migrate', '--status', '--data-dir', dataDirectory, '--json']);
    const migrations = JSON.parse(status.stdout) as Array<{
      version: number;
      appliedAt: number | null;
    }>;
    assert.ok(migrations.every((migration) => migration.appliedAt !== null));
    const again = await runKeel(['migrate', '--data-dir', dataDirectory]);
    assert.match(again.stdout, /the schema is up to date/);
    const verify = await runKeel(['audit', 'verify', '--data-dir', dataDirectory, '--json']);
    assert.equal(
      (JSON.parse(verify.stdout) as { total: number }).total,
      1,
      'the migration was audited',
    );
  });

  it('reports the runtime, data directory, storage, sandbox layers and services', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    const result = await runKeel(['doctor', '--data-dir', directory.path, '--json']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      node: string;
      checks: Array<{ area: string; name: string; status: string; detail: string }>;
      sandbox: Record<string, { available: boolean; detail: string }>;
      services: Array<{ name: string; reachable: boolean }>;
    };
    assert.equal(report.ok, true);
    assert.match(report.node, /^v2[4-9]\./);
    assert.deepEqual(Object.keys(report.sandbox).sort(), [
      'bubblewrap',
      'cgroups',
      'landlock',
      'seccomp',
      'userNamespaces',
    ]);
    assert.deepEqual(
      report.services.map((service) => service.name),
      ['postgres', 'redis', 'nats', 'mqtt'],
    );
    const tools = report.checks.filter((check) => ['prlimit', 'setpriv'].includes(check.name));
    assert.deepEqual(
      tools.map((check) => [check.name, check.status]),
      process.getuid?.() === 0
        ? [
            ['prlimit', 'ok'],
            ['setpriv', 'ok'],
          ]
        : [['prlimit', 'ok']],
    );
    const database = report.checks.find((check) => check.name === 'database');
    assert.equal(database?.status, 'ok');
    assert.match(database?.detail ?? '', /sound \(SQLite quick check\), 5 audit entries/);
    const human = await runKeel(['doctor', '--data-dir', directory.path]);
    assert.match(human.stdout, /Sandbox layers for agent workers/);
    assert.match(human.stdout, /Services on this machine/);
  });

  it('exits 1 and says why when the configuration is broken', async () => {
    await using directory = await temporaryDirectory();
    await dataDirectoryWithHistory(directory.path);
    await writeFile(join(directory.path, 'config.toml'), '[node]\nport = -1\n');
    const result = await runKeel(['doctor', '--data-dir', directory.path, '--json']);
    assert.equal(result.code, 1);
    const report = JSON.parse(result.stdout) as {
      checks: Array<{ name: string; status: string; detail: string }>;
    };
    const configuration = report.checks.find((check) => check.name === 'configuration');
    assert.equal(configuration?.status, 'fail');
    assert.match(configuration?.detail ?? '', /node\.port/);
  });
});
