import type { AgentStore } from './ports/agent-store.ts';
import type { ApprovalStore } from './ports/approval-store.ts';
import type { AuditStore } from './ports/audit-store.ts';
import type { BudgetStore } from './ports/budget-store.ts';
import type { GrantStore } from './ports/grant-store.ts';
import type { KeyValueStore } from './ports/key-value-store.ts';
import type { RunStore } from './ports/run-store.ts';
import type { UsageStore } from './ports/usage-store.ts';

export interface MigrationStatus {
  readonly version: number;
  readonly name: string;
  readonly checksum: string;
  readonly appliedAt: number | null;
}

export interface StorageHealth {
  readonly ready: boolean;
  readonly detail: string;
}

/**
 * The storage port: one store per aggregate. Adapters (`sqlite/`, later `postgres/`) implement
 * it and pass the shared contract suite in `storage.contract.ts`.
 *
 * @example
 * ```ts
 * const storage = await openSqliteStorage({ path, auditKey });
 * try { await storage.agents.list(); } finally { await storage.close(); }
 * ```
 */
export interface Storage extends AsyncDisposable {
  readonly audit: AuditStore;
  readonly agents: AgentStore;
  readonly runs: RunStore;
  readonly approvals: ApprovalStore;
  readonly usage: UsageStore;
  readonly budgets: BudgetStore;
  readonly keyValues: KeyValueStore;
  readonly grants: GrantStore;
  health(): StorageHealth;
  migrationStatus(): Promise<readonly MigrationStatus[]>;
  /** Waits for in-flight operations, then releases the database. Idempotent. */
  close(): Promise<void>;
}
