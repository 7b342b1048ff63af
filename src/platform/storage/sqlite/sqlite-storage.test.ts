import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { rejectsWithCode } from '../../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { AuditChainVerifier } from '../../integrity/audit-chain.ts';
import type { JsonValue } from '../ports/json-value.ts';
import { describeStorageContract } from '../storage.contract.ts';
import { openConnection } from './sqlite-connection.ts';
import { loadMigrations, SQLITE_MIGRATIONS_DIRECTORY } from './sqlite-migrator.ts';
import { openSqliteStorage } from './sqlite-storage.ts';
import { WorkerClient } from './worker-client.ts';
import type { OperationName } from './worker-protocol.ts';

const directories: Array<{ path: string } & AsyncDisposable> = [];

async function freshPath(): Promise<string> {
  const directory = await temporaryDirectory();
  directories.push(directory);
  return join(directory.path, 'keel.db');
}

after(async () => {
  for (const directory of directories) await directory[Symbol.asyncDispose]();
});

describeStorageContract('sqlite', async ({ auditKey }) =>
  openSqliteStorage({ path: await freshPath(), auditKey }),
);

/** A row as the audit store sends it to the worker (the worker checks the chain, not the hash). */
const auditRow = (seq: number, prevHash: string, hash: string) =>
  [seq, 1, 'test.event', 'system', null, null, null, null, null, '{}', prevHash, hash] as const;

const draft = {
  ts: 1,
  kind: 'test.event',
  actor: 'system',
  agentId: null,
  runId: null,
  subject: null,
  outcome: null,
  code: null,
  data: {},
} as const;

describe('sqlite storage', () => {
  let auditKey: Uint8Array;
  before(() => {
    auditKey = randomBytes(32);
  });

  it('keeps acknowledged data across a reopen', async () => {
    const path = await freshPath();
    const first = await openSqliteStorage({ path, auditKey });
    await first.audit.append([draft, draft]);
    await first.keyValues.set('k', 'v', 1);
    await first.close();
    const second = await openSqliteStorage({ path, auditKey });
    try {
      assert.equal(await second.audit.count(), 2);
      assert.equal(await second.keyValues.get('k'), 'v');
      const [next] = await second.audit.append([draft]);
      assert.equal(next?.seq, 3);
    } finally {
      await second.close();
    }
  });

  it('creates the database owner-only and tightens a looser existing one', async () => {
    const path = await freshPath();
    await (await openSqliteStorage({ path, auditKey })).close();
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await chmod(path, 0o644);
    await (await openSqliteStorage({ path, auditKey })).close();
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  it('refuses ATTACH and extension loading on its connections', async () => {
    const path = await freshPath();
    const database = openConnection(path, { readOnly: false, synchronous: 'full' });
    try {
      assert.throws(() => database.exec(`ATTACH '${path}.other' AS other`), /not authorized/);
      assert.throws(() => database.exec("SELECT load_extension('/tmp/nothing')"), /not authorized/);
    } finally {
      database.close();
    }
  });

  it('opens in WAL mode with full synchronous commits', async () => {
    const path = await freshPath();
    const database = openConnection(path, { readOnly: false, synchronous: 'full' });
    try {
      assert.equal(database.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
      assert.equal(database.prepare('PRAGMA synchronous').get()?.synchronous, 2);
    } finally {
      database.close();
    }
  });

  it('refuses a corrupted file with a clear error and leaves it untouched', async () => {
    const path = await freshPath();
    const garbage = randomBytes(8192);
    await writeFile(path, garbage);
    const error = await rejectsWithCode(
      openSqliteStorage({ path, auditKey }),
      'KEEL_STORAGE_CORRUPT',
    );
    assert.match(error.message, /corrupted or is not a Keel database/);
    assert.deepEqual(await readFile(path), garbage);
    assert.deepEqual(
      (await readdir(join(path, '..'))).filter((name) => name.startsWith('keel.db')),
      ['keel.db'],
    );
  });

  it('refuses a SQLite database that is not Keel’s', async () => {
    const path = await freshPath();
    const foreign = new DatabaseSync(path);
    foreign.exec('CREATE TABLE customers (id INTEGER PRIMARY KEY)');
    foreign.close();
    const error = await rejectsWithCode(
      openSqliteStorage({ path, auditKey }),
      'KEEL_STORAGE_CORRUPT',
    );
    assert.match(error.message, /not a Keel database/);
  });

  it('refuses to start when an applied migration changed', async () => {
    const path = await freshPath();
    const directory = join(path, '..', 'migrations');
    await mkdir(directory);
    const original = join(directory, '0001_initial.sql');
    await copyFile(new URL('0001_initial.sql', SQLITE_MIGRATIONS_DIRECTORY), original);
    const directoryUrl = pathToFileURL(`${directory}/`);
    await (
      await openSqliteStorage({ path, auditKey, migrations: loadMigrations(directoryUrl) })
    ).close();
    await writeFile(original, `${await readFile(original, 'utf8')}\n-- edited\n`);
    const error = await rejectsWithCode(
      openSqliteStorage({ path, auditKey, migrations: loadMigrations(directoryUrl) }),
      'KEEL_MIGRATION_CHECKSUM_MISMATCH',
    );
    assert.match(error.message, /migration 1 \(initial\) changed after it was applied/);
  });

  it('applies a new numbered migration on the next open', async () => {
    const path = await freshPath();
    const directory = join(path, '..', 'migrations');
    await mkdir(directory);
    const shipped = loadMigrations(SQLITE_MIGRATIONS_DIRECTORY);
    for (const migration of shipped) {
      const file = `${String(migration.version).padStart(4, '0')}_${migration.name}.sql`;
      await copyFile(new URL(file, SQLITE_MIGRATIONS_DIRECTORY), join(directory, file));
    }
    const directoryUrl = pathToFileURL(`${directory}/`);
    await (
      await openSqliteStorage({ path, auditKey, migrations: loadMigrations(directoryUrl) })
    ).close();
    const next = shipped.length + 1;
    await writeFile(
      join(directory, `${String(next).padStart(4, '0')}_notes.sql`),
      'CREATE TABLE notes (id INTEGER PRIMARY KEY) STRICT;',
    );
    const storage = await openSqliteStorage({
      path,
      auditKey,
      migrations: loadMigrations(directoryUrl),
    });
    try {
      const status = await storage.migrationStatus();
      assert.deepEqual(
        status.map((migration) => [
          migration.version,
          migration.name,
          migration.appliedAt !== null,
        ]),
        [
          ...shipped.map((migration) => [migration.version, migration.name, true]),
          [next, 'notes', true],
        ],
      );
    } finally {
      await storage.close();
    }
    // Opening it again without the newest migration means a newer Keel migrated it.
    await rejectsWithCode(
      openSqliteStorage({
        path,
        auditKey,
        migrations: loadMigrations(SQLITE_MIGRATIONS_DIRECTORY),
      }),
      'KEEL_MIGRATION_UNKNOWN',
    );
  });

  it('opens read-only without migrating and refuses a missing or schema-less database', async () => {
    const path = await freshPath();
    await rejectsWithCode(openSqliteStorage({ path, auditKey, readOnly: true }), 'KEEL_NOT_FOUND');
    new DatabaseSync(path).close();
    await rejectsWithCode(
      openSqliteStorage({ path, auditKey, readOnly: true }),
      'KEEL_MIGRATION_PENDING',
    );
    await (await openSqliteStorage({ path, auditKey })).close();
    const reader = await openSqliteStorage({ path, readOnly: true });
    try {
      assert.equal(await reader.audit.count(), 0);
      await rejectsWithCode(reader.audit.append([draft]), 'KEEL_AUDIT_KEY_MISSING');
    } finally {
      await reader.close();
    }
  });

  it('reads while another connection writes (WAL)', async () => {
    const path = await freshPath();
    const writer = await openSqliteStorage({ path, auditKey });
    const reader = await openSqliteStorage({ path, readOnly: true });
    try {
      await writer.audit.append([draft, draft, draft]);
      assert.equal(await reader.audit.count(), 3);
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('backs up a database in use into a file that verifies', async () => {
    const path = await freshPath();
    const storage = await openSqliteStorage({ path, auditKey });
    const destination = join(path, '..', 'backup.db');
    try {
      await storage.audit.append(Array.from({ length: 20 }, () => draft));
      const writes = storage.audit.append([draft]);
      await storage.backup(destination);
      await writes;
    } finally {
      await storage.close();
    }
    const copy = await openSqliteStorage({ path: destination, readOnly: true });
    try {
      const records = await copy.audit.read(1, 100);
      assert.ok(records.length >= 20);
      const verifier = new AuditChainVerifier(auditKey);
      for (const record of records) assert.ok(verifier.accept(record));
      assert.equal(await copy.quickCheck(), 'ok');
    } finally {
      await copy.close();
    }
    const leftovers = (await readdir(join(path, '..'))).filter((name) => name.includes('partial'));
    assert.deepEqual(leftovers, []);
  });

  it('answers writes while a backup runs, and a close waits for the backup', async () => {
    const path = await freshPath();
    const storage = await openSqliteStorage({ path });
    const destination = join(path, '..', 'backup.db');
    const payload = 'x'.repeat(4_000);
    await Promise.all(
      Array.from({ length: 2_000 }, (_, index) => storage.keyValues.set(`k${index}`, payload, 1)),
    );
    // Not awaited: the writes and the close below go in while the backup is in flight.
    const backedUp = storage.backup(destination);
    const writes = Array.from({ length: 50 }, (_, index) =>
      storage.keyValues.set(`during${index}`, index, 1),
    );
    await Promise.all(writes);
    const closed = storage.close();
    await backedUp;
    await closed;
    const reopened = await openSqliteStorage({ path });
    try {
      assert.equal(await reopened.keyValues.get('during49'), 49);
    } finally {
      await reopened.close();
    }
    const copy = await openSqliteStorage({ path: destination, readOnly: true });
    try {
      assert.equal(await copy.keyValues.get('k1999'), payload);
      assert.equal(await copy.quickCheck(), 'ok');
    } finally {
      await copy.close();
    }
  });

  it('answers a request that arrives after the worker has been idle', async () => {
    const storage = await openSqliteStorage({ path: await freshPath() });
    try {
      await storage.keyValues.set('before', 1, 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await storage.keyValues.set('after', 2, 1);
      assert.deepEqual(
        await Promise.all([storage.keyValues.get('before'), storage.keyValues.get('after')]),
        [1, 2],
      );
    } finally {
      await storage.close();
    }
  });

  it('fails a backup into a missing directory without leaving a partial file', async () => {
    const path = await freshPath();
    const storage = await openSqliteStorage({ path, auditKey });
    try {
      await rejectsWithCode(
        storage.backup(join(path, '..', 'missing', 'backup.db')),
        'KEEL_BACKUP_FAILED',
      );
    } finally {
      await storage.close();
    }
    const leftovers = (await readdir(join(path, '..'))).filter((name) => name.includes('partial'));
    assert.deepEqual(leftovers, []);
  });

  it('fails a request that cannot be sent alone, and sends the others of its turn', async () => {
    const storage = await openSqliteStorage({ path: await freshPath(), auditKey });
    try {
      const [good, bad, other] = await Promise.allSettled([
        storage.keyValues.set('good', 1, 1),
        storage.keyValues.set('bad', (() => 1) as unknown as JsonValue, 1),
        storage.keyValues.set('other', 2, 1),
      ]);
      assert.deepEqual([good.status, other.status], ['fulfilled', 'fulfilled']);
      assert.equal(bad.status, 'rejected');
      assert.equal(
        bad.status === 'rejected' && (bad.reason as { code?: string }).code,
        'KEEL_INVALID_ARGUMENT',
      );
      assert.deepEqual(
        [await storage.keyValues.get('good'), await storage.keyValues.get('other')],
        [1, 2],
      );
    } finally {
      await storage.close();
    }
  });

  it('groups concurrent requests into shared transactions (group commit)', async () => {
    const storage = await openSqliteStorage({ path: await freshPath(), auditKey });
    try {
      const before = await storage.statistics();
      await Promise.all(
        Array.from({ length: 200 }, (_, index) => storage.keyValues.set(`key-${index}`, index, 1)),
      );
      const after = await storage.statistics();
      const transactions = after.transactions - before.transactions;
      const requests = after.requests - before.requests;
      assert.ok(requests >= 200, String(requests));
      assert.ok(
        transactions < requests / 10,
        `${transactions} transactions for ${requests} requests`,
      );
      assert.ok(after.recentTransactions.count >= transactions);
      assert.ok(after.recentTransactions.p50Ms > 0, 'transaction durations are recorded');
      assert.equal(await storage.keyValues.get('key-199'), 199);
    } finally {
      await storage.close();
    }
  });

  it('keeps the writes of a transaction when one of its requests fails (savepoints)', async () => {
    const storage = await openSqliteStorage({ path: await freshPath(), auditKey });
    try {
      const before = await storage.statistics();
      // All issued in one turn of the event loop: one message, one transaction.
      const outcomes = await Promise.allSettled([
        storage.agents.create({ id: 'agt_a', name: 'same-name', trustLevel: 'standard', now: 1 }),
        storage.keyValues.set('written-before', 1, 1),
        storage.agents.create({ id: 'agt_b', name: 'same-name', trustLevel: 'standard', now: 1 }),
        storage.keyValues.set('written-after', 2, 1),
      ]);
      const after = await storage.statistics();
      // The second statistics request counts its own transaction too.
      assert.equal(after.transactions - before.transactions - 1, 1, 'one shared transaction');
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
      );
      assert.equal((await storage.agents.get('agt_a'))?.name, 'same-name');
      assert.equal(await storage.agents.get('agt_b'), undefined);
      assert.equal(await storage.keyValues.get('written-before'), 1);
      assert.equal(await storage.keyValues.get('written-after'), 2);
    } finally {
      await storage.close();
    }
  });

  it('commits audit appends with the other writes made in the same turn', async () => {
    const storage = await openSqliteStorage({ path: await freshPath(), auditKey });
    try {
      await storage.audit.append([draft]);
      const before = await storage.statistics();
      // As the gate records a syscall: journal-like write, audit entry, budget-like write.
      await Promise.all([
        storage.keyValues.set('journal', 1, 1),
        storage.audit.append([draft]),
        storage.audit.append([draft]),
        storage.keyValues.set('settle', 2, 1),
      ]);
      const after = await storage.statistics();
      assert.equal(after.transactions - before.transactions - 1, 1, 'one transaction for all four');
      assert.equal(
        after.requests - before.requests - 1,
        3,
        'the two appends travelled as one request',
      );
      assert.equal(await storage.audit.count(), 3);
    } finally {
      await storage.close();
    }
  });

  it('refuses an invalid audit draft alone, keeping the other appends of the turn', async () => {
    const path = await freshPath();
    const storage = await openSqliteStorage({ path, auditKey });
    try {
      const results = await Promise.allSettled([
        storage.audit.append([draft]),
        storage.audit.append([{ ...draft, kind: '' }]),
        storage.audit.append([draft]),
      ]);
      assert.deepEqual(
        results.map((result) => result.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      const records = await storage.audit.read(1, 10);
      assert.deepEqual(
        records.map((record) => record.seq),
        [1, 2],
      );
      const verifier = new AuditChainVerifier(auditKey);
      for (const record of records) assert.ok(verifier.accept(record));
    } finally {
      await storage.close();
    }
  });
});

/** The storage worker alone, to send it requests no store would make. */
async function startWorkerClient(): Promise<WorkerClient> {
  const { client } = await WorkerClient.start(
    {
      path: await freshPath(),
      readOnly: false,
      synchronous: 'full',
      migrations: loadMigrations(),
      migrationMode: 'apply',
      maxBatch: 100,
    },
    () => undefined,
  );
  return client;
}

describe('sqlite storage worker protocol', () => {
  it('answers an unknown operation, even one named like a prototype member, with a typed error', async () => {
    const client = await startWorkerClient();
    try {
      for (const op of ['constructor', '__proto__', 'toString', 'audit.drop']) {
        const error = await rejectsWithCode(
          client.call(op as OperationName, [] as never),
          'KEEL_INTERNAL',
        );
        assert.match(error.message, /unknown storage operation/);
      }
      assert.equal(await client.call('audit.count', []), 0, 'the worker is still serving');
    } finally {
      await client.close();
    }
  });

  it('refuses chained audit rows that do not extend the stored chain', async () => {
    const client = await startWorkerClient();
    try {
      await client.call('audit.insertChained', [[auditRow(1, '0'.repeat(64), 'a'.repeat(64))]]);
      const gap = await rejectsWithCode(
        client.call('audit.insertChained', [[auditRow(3, 'a'.repeat(64), 'b'.repeat(64))]]),
        'KEEL_CONFLICT',
      );
      assert.match(gap.message, /does not extend the stored chain at #1/);
      await rejectsWithCode(
        client.call('audit.insertChained', [[auditRow(2, 'f'.repeat(64), 'b'.repeat(64))]]),
        'KEEL_CONFLICT',
      );
      assert.equal(await client.call('audit.count', []), 1);
    } finally {
      await client.close();
    }
  });
  it('undoes a failed request of a shared transaction wholly, and keeps a committed failure', async () => {
    const client = await startWorkerClient();
    try {
      await client.call('agents.create', [
        { id: 'agt_a', name: 'agent-a', trustLevel: 'standard', now: 1 },
      ]);
      const approval = await client.call('approvals.create', [
        {
          id: 'apr_late',
          agentId: 'agt_a',
          runId: null,
          seq: null,
          kind: 'tool.call',
          resource: 'shell',
          intentDigest: 'digest-1',
          summary: {},
          reason: 'needs approval',
          requestedAt: 1,
          expiresAt: 10,
        },
      ]);
      const before = (await client.call('storage.statistics', [])).transactions;
      // All in one turn, so one message and one transaction.
      const outcomes = await Promise.allSettled([
        client.call('keyValues.set', ['written-before', 1, 1]),
        // Marks the approval expired and answers with an error: the mark must stand.
        client.call('approvals.decide', [
          approval.id,
          { state: 'approved', decidedBy: 'a', now: 20 },
        ]),
        // Inserts its first row, then fails on its second: neither may stand.
        client.call('audit.insertChained', [
          [
            auditRow(1, '0'.repeat(64), 'a'.repeat(64)),
            auditRow(3, 'a'.repeat(64), 'b'.repeat(64)),
          ],
        ]),
        client.call('keyValues.set', ['written-after', 2, 1]),
      ]);
      const after = (await client.call('storage.statistics', [])).transactions;
      assert.equal(after - before - 1, 1, 'one shared transaction');
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
      );
      assert.equal((await client.call('approvals.get', [approval.id]))?.state, 'expired');
      assert.equal(await client.call('audit.count', []), 0);
      // The chain head the worker holds was read again: the next row extends the stored chain.
      await client.call('audit.insertChained', [[auditRow(1, '0'.repeat(64), 'c'.repeat(64))]]);
      assert.equal(await client.call('keyValues.get', ['written-before']), 1);
      assert.equal(await client.call('keyValues.get', ['written-after']), 2);
    } finally {
      await client.close();
    }
  });
});
