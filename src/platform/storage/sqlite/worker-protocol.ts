import type { KeelErrorJson } from '../../errors/keel-error.ts';
import type { AgentStore } from '../ports/agent-store.ts';
import type { ApprovalStore } from '../ports/approval-store.ts';
import type { AuditHead, AuditStore } from '../ports/audit-store.ts';
import type { BudgetStore } from '../ports/budget-store.ts';
import type { GrantStore } from '../ports/grant-store.ts';
import type { KeyValueStore } from '../ports/key-value-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { UsageStore } from '../ports/usage-store.ts';
import type { MigrationStatus } from '../storage.ts';
import type { MigrationFile, MigrationMode } from './sqlite-migrator.ts';

/**
 * The operations the storage worker runs, derived from the port interfaces: operation
 * `agents.get` takes the arguments of `AgentStore.get` and answers its result. Keeping the
 * protocol derived means a port change cannot drift from the worker silently.
 */
type OperationsOf<Prefix extends string, Port> = {
  [Method in keyof Port & string as `${Prefix}.${Method}`]: Port[Method] extends (
    ...parameters: infer MethodParameters
  ) => Promise<infer Result>
    ? { readonly parameters: MethodParameters; readonly result: Result }
    : never;
};

export type StoreOperations = OperationsOf<'audit', Omit<AuditStore, 'append'>> &
  OperationsOf<'agents', AgentStore> &
  OperationsOf<'runs', RunStore> &
  OperationsOf<'approvals', ApprovalStore> &
  OperationsOf<'usage', UsageStore> &
  OperationsOf<'budgets', BudgetStore> &
  OperationsOf<'keyValues', KeyValueStore> &
  OperationsOf<'grants', GrantStore>;

/**
 * One chained audit row as the main thread prepared it: seq, ts, kind, actor, agentId, runId,
 * subject, outcome, code, canonical data, prevHash, hash (the audit_log column order).
 */
export type AuditRow = readonly [
  seq: number,
  ts: number,
  kind: string,
  actor: string,
  agentId: string | null,
  runId: string | null,
  subject: string | null,
  outcome: string | null,
  code: string | null,
  data: string,
  prevHash: string,
  hash: string,
];

export type SqliteOperations = StoreOperations & {
  /** Inserts rows chained on the main thread, refusing any that does not extend the stored chain. */
  readonly 'audit.insertChained': {
    readonly parameters: [rows: readonly AuditRow[]];
    readonly result: AuditHead;
  };
  readonly 'storage.migrationStatus': {
    readonly parameters: [];
    readonly result: readonly MigrationStatus[];
  };
  readonly 'storage.quickCheck': { readonly parameters: []; readonly result: string };
  readonly 'storage.statistics': { readonly parameters: []; readonly result: StorageStatistics };
};

export type OperationName = keyof SqliteOperations & string;

/** What the storage worker reports about its group commits. */
export interface StorageStatistics {
  /** Transactions committed since the database was opened. */
  readonly transactions: number;
  /** Requests they held; requests ÷ transactions is the group-commit factor. */
  readonly requests: number;
  /** Duration of up to the last 4,096 transactions, begin to durable commit. */
  readonly recentTransactions: {
    readonly count: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly maxMs: number;
  };
}

export type Synchronous = 'full' | 'normal';

/** What the worker needs to open the database; sent as `workerData`. */
export interface WorkerOpenOptions {
  readonly path: string;
  readonly readOnly: boolean;
  readonly synchronous: Synchronous;
  readonly migrations: readonly MigrationFile[];
  readonly migrationMode: MigrationMode;
  /** Most requests one transaction groups. */
  readonly maxBatch: number;
}

/**
 * What the worker is started with: the open options and the doorbell, one shared 32-bit
 * counter the main thread increments and notifies after each message it posts.
 */
export interface WorkerData extends WorkerOpenOptions {
  readonly doorbell: Int32Array<SharedArrayBuffer>;
}

export interface OperationRequest {
  readonly id: number;
  readonly operation: OperationName;
  readonly parameters: readonly unknown[];
}

export type OperationResult =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: KeelErrorJson };

export type MainToWorker =
  | { readonly type: 'batch'; readonly requests: readonly OperationRequest[] }
  | { readonly type: 'backup'; readonly id: number; readonly destination: string }
  | { readonly type: 'close' };

export type WorkerToMain =
  | { readonly type: 'opened'; readonly migrations: readonly MigrationStatus[] }
  | { readonly type: 'open-failed'; readonly error: KeelErrorJson }
  | { readonly type: 'results'; readonly results: readonly OperationResult[] }
  | { readonly type: 'backup-done'; readonly id: number; readonly error: KeelErrorJson | null };
