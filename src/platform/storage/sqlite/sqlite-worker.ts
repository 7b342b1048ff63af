/**
 * The storage worker: the single writer of a Keel SQLite database. It owns the connection,
 * runs operations in order, and groups every request that arrived since its last commit into
 * one transaction (group commit), each request in its own savepoint so that one failure does
 * not undo its neighbours. A request is answered only after the commit that holds it. It
 * sleeps on a doorbell (see `pump`), not in its event loop.
 */
import { backup } from 'node:sqlite';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { KeelError } from '../../errors/keel-error.ts';
import { agentOperations } from './operations/agent-operations.ts';
import { approvalOperations } from './operations/approval-operations.ts';
import { auditOperations } from './operations/audit-operations.ts';
import { budgetOperations } from './operations/budget-operations.ts';
import { grantOperations } from './operations/grant-operations.ts';
import { keyValueOperations } from './operations/key-value-operations.ts';
import { CommittedFailure, type OperationContext } from './operations/operation-context.ts';
import { runOperations } from './operations/run-operations.ts';
import { usageOperations } from './operations/usage-operations.ts';
import { openConnection, StatementCache } from './sqlite-connection.ts';
import { fromSqliteError } from './sqlite-errors.ts';
import { migrate } from './sqlite-migrator.ts';
import type {
  MainToWorker,
  OperationRequest,
  OperationResult,
  WorkerData,
  WorkerToMain,
} from './worker-protocol.ts';

type AnyHandler = (context: OperationContext, ...parameters: readonly unknown[]) => unknown;

if (parentPort === null) throw new Error('sqlite-worker.ts must run in a worker thread');
const messagePort = parentPort;
const options = workerData as WorkerData;
const doorbell = options.doorbell;
/** How long the loop sleeps at most between turns of the event loop while a backup runs. */
const BACKUP_POLL_MS = 1;

function post(message: WorkerToMain): void {
  messagePort.postMessage(message);
}

const storageOperations: Readonly<Record<string, AnyHandler>> = {
  ...auditOperations,
  ...agentOperations,
  ...runOperations,
  ...approvalOperations,
  ...usageOperations,
  ...budgetOperations,
  ...keyValueOperations,
  ...grantOperations,
} as unknown as Record<string, AnyHandler>;

function start(): void {
  let database: ReturnType<typeof openConnection>;
  try {
    database = openConnection(options.path, {
      readOnly: options.readOnly,
      synchronous: options.synchronous,
    });
  } catch (error) {
    post({ type: 'open-failed', error: fromSqliteError(error, options.path).toJSON() });
    messagePort.close();
    return;
  }
  let migrationStatus: ReturnType<typeof migrate>;
  try {
    migrationStatus = migrate(database, options.migrations, {
      mode: options.migrationMode,
      path: options.path,
      now: Date.now(),
    });
  } catch (error) {
    database.close();
    post({ type: 'open-failed', error: fromSqliteError(error, options.path).toJSON() });
    messagePort.close();
    return;
  }

  const statements = new StatementCache(database);
  const context: OperationContext = {
    statements,
    path: options.path,
    auditHead: undefined,
  };
  const handlers: Readonly<Record<string, AnyHandler>> = {
    ...storageOperations,
    'storage.migrationStatus': () =>
      migrate(database, options.migrations, {
        mode: 'inspect',
        path: options.path,
        now: Date.now(),
      }),
    'storage.statistics': () => {
      const count = Math.min(statistics.transactions, recentTransactionMs.length);
      const recent = Array.from(recentTransactionMs.subarray(0, count)).sort(
        (left, right) => left - right,
      );
      const at = (fraction: number): number =>
        recent[Math.min(count - 1, Math.floor(fraction * count))] ?? 0;
      return {
        ...statistics,
        recentTransactions: { count, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: recent.at(-1) ?? 0 },
      };
    },
    'storage.quickCheck': () => {
      const rows = database.prepare('PRAGMA quick_check').all() as { quick_check: string }[];
      return rows.map((row) => row.quick_check).join('; ');
    },
  };

  const begin = statements.get(options.readOnly ? 'BEGIN DEFERRED' : 'BEGIN IMMEDIATE');
  const commit = statements.get('COMMIT');
  const savepoint = statements.get('SAVEPOINT keel_operation');
  const release = statements.get('RELEASE keel_operation');
  const rollbackToSavepoint = statements.get('ROLLBACK TO keel_operation');

  /** Requests by the message they came in. */
  const queue: (readonly OperationRequest[])[] = [];
  const statistics = { transactions: 0, requests: 0 };
  // How long recent transactions took (begin to durable commit), for statistics().
  const recentTransactionMs = new Float64Array(4096);
  let closing = false;
  let backupsInFlight = 0;

  function handlerFor(request: OperationRequest): AnyHandler | undefined {
    // Own properties only: an operation named after an Object.prototype member is not an operation.
    return Object.hasOwn(handlers, request.operation) ? handlers[request.operation] : undefined;
  }

  function unknownOperation(request: OperationRequest): OperationResult {
    return {
      id: request.id,
      ok: false,
      error: new KeelError(
        'KEEL_INTERNAL',
        `unknown storage operation ${request.operation}`,
      ).toJSON(),
    };
  }

  /** One request in its own savepoint: a failure undoes its writes and nobody else's. */
  function runOne(request: OperationRequest): OperationResult {
    const handler = handlerFor(request);
    if (handler === undefined) return unknownOperation(request);
    savepoint.run();
    try {
      const value = handler(context, ...request.parameters);
      release.run();
      return { id: request.id, ok: true, value };
    } catch (error) {
      if (error instanceof CommittedFailure) {
        release.run();
        return { id: request.id, ok: false, error: error.failure.toJSON() };
      }
      rollbackToSavepoint.run();
      release.run();
      context.auditHead = undefined;
      return { id: request.id, ok: false, error: fromSqliteError(error, options.path).toJSON() };
    }
  }

  /**
   * The batch without a savepoint per request, for the usual case where none fails; undefined
   * as soon as one does, its writes and all before it still in the open transaction.
   */
  function runAll(batch: readonly OperationRequest[]): OperationResult[] | undefined {
    const results: OperationResult[] = [];
    for (const request of batch) {
      const handler = handlerFor(request);
      if (handler === undefined) {
        results.push(unknownOperation(request));
        continue;
      }
      try {
        results.push({ id: request.id, ok: true, value: handler(context, ...request.parameters) });
      } catch (error) {
        if (!(error instanceof CommittedFailure)) return undefined;
        results.push({ id: request.id, ok: false, error: error.failure.toJSON() });
      }
    }
    return results;
  }

  /** Undoes the open transaction, if any; the chain head it may have moved is read again. */
  function undo(): void {
    if (database.isTransaction) database.exec('ROLLBACK');
    context.auditHead = undefined;
  }

  function runBatch(batch: readonly OperationRequest[]): OperationResult[] {
    const failAll = (error: unknown): OperationResult[] => {
      const failure = fromSqliteError(error, options.path).toJSON();
      return batch.map((request) => ({ id: request.id, ok: false, error: failure }));
    };
    try {
      begin.run();
      // A savepoint per request costs two statements each. Handlers are deterministic over
      // the database and their parameters, so the batch first runs without them; only when a
      // request fails is the whole transaction undone and the batch run again, each request
      // in a savepoint, so that the failure undoes its own writes and nobody else's.
      let results = runAll(batch);
      if (results === undefined) {
        undo();
        begin.run();
        results = batch.map(runOne);
      }
      commit.run();
      return results;
    } catch (error) {
      undo();
      // Nothing of the batch is durable, so nothing of it may be acknowledged.
      return failAll(error);
    }
  }

  /** Commits what is queued, whole messages at a time, and answers each transaction's requests. */
  function drain(): void {
    while (queue.length > 0) {
      // Whole messages only: what the main thread sent together commits together (a
      // syscall's journal entry, audit entry and budget settlement).
      let size = 0;
      let messages = 0;
      while (
        messages < queue.length &&
        (messages === 0 || size + (queue[messages]?.length ?? 0) <= options.maxBatch)
      ) {
        size += queue[messages]?.length ?? 0;
        messages += 1;
      }
      const batch = queue.splice(0, messages).flat();
      statistics.transactions += 1;
      statistics.requests += batch.length;
      const started = performance.now();
      const results = runBatch(batch);
      recentTransactionMs[(statistics.transactions - 1) % recentTransactionMs.length] =
        performance.now() - started;
      post({ type: 'results', results });
    }
  }

  function receive(message: MainToWorker): void {
    switch (message.type) {
      case 'batch':
        queue.push(message.requests);
        break;
      case 'backup':
        void runBackup(message.id, message.destination);
        break;
      case 'close':
        closing = true;
        break;
    }
  }

  /** Takes every message that has arrived, without waiting for any. */
  function receiveAll(): void {
    for (;;) {
      const received = receiveMessageOnPort(messagePort);
      if (received === undefined) return;
      receive(received.message as MainToWorker);
    }
  }

  /**
   * The thread's loop. Between messages it sleeps in `Atomics.wait` on the doorbell the main
   * thread rings after each message it posts, instead of in its event loop: the wake-up costs
   * one futex wake rather than the event loop's turn, and the slow wake-ups are what a step
   * paid for most. Everything that arrived while a transaction ran joins the next one (group
   * commit). A backup runs on the event loop, so while one is in flight the loop hands the
   * thread back to it between short waits; once closing, it finishes the queue and any backup,
   * then closes the database and lets the thread end.
   */
  function pump(): void {
    for (;;) {
      const rung = Atomics.load(doorbell, 0);
      receiveAll();
      if (queue.length > 0) {
        drain();
        continue;
      }
      if (backupsInFlight > 0) {
        Atomics.wait(doorbell, 0, rung, BACKUP_POLL_MS);
        setImmediate(pump);
        return;
      }
      if (closing) {
        database.close();
        messagePort.close();
        return;
      }
      Atomics.wait(doorbell, 0, rung);
    }
  }

  async function runBackup(id: number, destination: string): Promise<void> {
    backupsInFlight += 1;
    // A connection of its own: a backup that shares the writer's connection fails whenever a
    // write transaction is open on it. All pages go in one step, inside one read transaction,
    // so concurrent commits (which WAL lets continue) cannot force the copy to restart.
    let source: ReturnType<typeof openConnection> | undefined;
    try {
      source = openConnection(options.path, { readOnly: true, synchronous: options.synchronous });
      await backup(source, destination, { rate: 2 ** 30 });
      post({ type: 'backup-done', id, error: null });
    } catch (error) {
      post({
        type: 'backup-done',
        id,
        error: new KeelError('KEEL_BACKUP_FAILED', `backup to ${destination} failed`, {
          cause: error,
          details: { reason: error instanceof Error ? error.message : String(error) },
        }).toJSON(),
      });
    } finally {
      source?.close();
      backupsInFlight -= 1;
    }
  }

  post({ type: 'opened', migrations: migrationStatus });
  pump();
}

start();
