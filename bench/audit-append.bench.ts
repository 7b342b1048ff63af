/**
 * Audit append throughput with durability as shipped (the storage worker, WAL,
 * synchronous=FULL, group commit, HMAC chain), against raw node:sqlite insert loops of the
 * same rows in the same run: one transaction for all rows (the fastest possible, durable only
 * at the end) and one autocommit per row (each row durable, like an acknowledged append).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  AUDIT_GENESIS_HASH,
  type AuditDraft,
  AuditHasher,
} from '../src/platform/integrity/audit-chain.ts';
import { canonicalJson } from '../src/platform/integrity/canonical-json.ts';
import { openSqliteStorage } from '../src/platform/storage/sqlite/sqlite-storage.ts';
import { type BenchRow, percentile, round, runConcurrently } from './bench-support.ts';

const ROWS = 20_000;
const CONCURRENCY = 64;

function draft(index: number): AuditDraft {
  return {
    ts: Date.now(),
    kind: 'syscall.allow',
    actor: 'agent:agt_0193f1c2a4b07c3d8e9f0a1b2c3d4e5f',
    agentId: 'agt_0193f1c2a4b07c3d8e9f0a1b2c3d4e5f',
    runId: 'run_0193f1c2a4b07c3d8e9f0a1b2c3d4e60',
    subject: 'tool.call shell',
    outcome: 'ok',
    code: null,
    data: {
      seq: index,
      grantId: 'grt_0193f1c2a4b07c3d8e9f0a1b2c3d4e61',
      params: { command: 'npm test' },
      durationMs: 3,
    },
  };
}

const INSERT =
  'INSERT INTO audit_log (seq, ts, kind, actor, agent_id, run_id, subject, outcome, code, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

function rawLoop(
  path: string,
  drafts: readonly AuditDraft[],
  key: Uint8Array,
  oneTransaction: boolean,
): number {
  const database = new DatabaseSync(path);
  database.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
  database.exec(
    'CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, agent_id TEXT, run_id TEXT, subject TEXT, outcome TEXT, code TEXT, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL) STRICT',
  );
  // The same rows, hashes included, computed before the clock starts: the loop only inserts.
  const hasher = new AuditHasher(key);
  let previous = AUDIT_GENESIS_HASH;
  const rows = drafts.map((entry, index) => {
    const hash = hasher.hash(previous, index + 1, entry);
    const row = [
      index + 1,
      entry.ts,
      entry.kind,
      entry.actor,
      entry.agentId,
      entry.runId,
      entry.subject,
      entry.outcome,
      entry.code,
      canonicalJson(entry.data),
      previous,
      hash,
    ] as const;
    previous = hash;
    return row;
  });
  const insert = database.prepare(INSERT);
  const started = performance.now();
  if (oneTransaction) database.exec('BEGIN');
  for (const row of rows) insert.run(...row);
  if (oneTransaction) database.exec('COMMIT');
  const elapsed = performance.now() - started;
  database.close();
  return elapsed;
}

export async function run(): Promise<BenchRow[]> {
  const directory = await mkdtemp(join(tmpdir(), 'keel-bench-audit-'));
  try {
    const key = randomBytes(32);
    const drafts = Array.from({ length: ROWS }, (_, index) => draft(index));
    const rawTransaction = rawLoop(join(directory, 'raw-tx.db'), drafts, key, true);
    const rawAutocommit =
      rawLoop(join(directory, 'raw-auto.db'), drafts.slice(0, 2_000), key, false) * (ROWS / 2_000);

    const storage = await openSqliteStorage({ path: join(directory, 'keel.db'), auditKey: key });
    await storage.audit.append([draft(-1)]);
    const { elapsedMs, latencies } = await runConcurrently(ROWS, CONCURRENCY, (index) =>
      storage.audit.append([drafts[index] ?? draft(index)]),
    );
    const sequential = await runConcurrently(2_000, 1, (index) =>
      storage.audit.append([drafts[index] ?? draft(index)]),
    );
    await storage.close();
    latencies.sort((left, right) => left - right);
    sequential.latencies.sort((left, right) => left - right);
    const versusAutocommit = elapsedMs / rawAutocommit;
    const versusTransaction = elapsedMs / rawTransaction;
    return [
      {
        name: `raw node:sqlite insert loop, autocommit, WAL + synchronous=FULL (${ROWS} rows, from 2000)`,
        value: round(rawAutocommit, 1),
        unit: 'ms',
        details: {
          rowsPerSecond: Math.round(ROWS / (rawAutocommit / 1000)),
          note: 'each row durable, like an acknowledged append',
        },
      },
      {
        name: `raw node:sqlite insert loop, one transaction (${ROWS} rows)`,
        value: round(rawTransaction, 1),
        unit: 'ms',
        details: {
          rowsPerSecond: Math.round(ROWS / (rawTransaction / 1000)),
          note: 'durable only at the end; hashes precomputed',
        },
      },
      {
        name: `audit.append as shipped, ${CONCURRENCY} in flight (${ROWS} entries)`,
        value: round(elapsedMs, 1),
        unit: 'ms',
        baseline: 'raw autocommit loop, same durability',
        ratio: round(versusAutocommit, 3),
        target: '≤ 2× the raw loop',
        met: versusAutocommit <= 2,
        details: {
          entriesPerSecond: Math.round(ROWS / (elapsedMs / 1000)),
          versusOneTransaction: round(versusTransaction, 2),
          p50Ms: round(percentile(latencies, 0.5), 3),
          p99Ms: round(percentile(latencies, 0.99), 3),
        },
      },
      {
        name: 'audit.append as shipped, one at a time (2000 entries)',
        value: round(sequential.elapsedMs, 1),
        unit: 'ms',
        details: {
          p50Ms: round(percentile(sequential.latencies, 0.5), 3),
          p99Ms: round(percentile(sequential.latencies, 0.99), 3),
        },
      },
    ];
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
