import { AuditLog } from '../../kernel/audit/audit-log.ts';
import { BudgetLedger } from '../../kernel/budgets/budget-ledger.ts';
import { claimDataDirectory } from '../../kernel/config/data-directory.ts';
import type { LoadedConfiguration } from '../../kernel/config/load-configuration.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type {
  BudgetAmounts,
  BudgetScope,
  BudgetState,
} from '../../platform/storage/ports/budget-store.ts';
import type {
  UsageDimension,
  UsageFilter,
  UsageSummaryRow,
} from '../../platform/storage/ports/usage-store.ts';
import { openSqliteStorage } from '../../platform/storage/sqlite/sqlite-storage.ts';
import { existingAuditKey } from './audit-key.ts';
import { openAuditReader } from './verify-audit.ts';

const SCOPE = /^(agent|run):[\w.-]{1,128}$/;

/**
 * Checks a budget scope given on the command line: `agent:<id>` or `run:<id>`.
 *
 * @example
 * ```ts
 * const scope = parseBudgetScope('agent:agt_0193…');
 * ```
 */
export function parseBudgetScope(value: string): BudgetScope {
  if (!SCOPE.test(value)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${value} is not a budget scope`, {
      hint: 'write agent:<agent id> or run:<run id>',
    });
  }
  return value as BudgetScope;
}

/**
 * Reads budgets (one scope, or all of them) without writing; works while a node runs.
 *
 * @example
 * ```ts
 * const budgets = await readBudgets(loaded, 'agent:');
 * ```
 */
export async function readBudgets(
  loaded: LoadedConfiguration,
  filter: { readonly scope?: BudgetScope; readonly prefix?: string },
): Promise<readonly BudgetState[]> {
  await using storage = await openAuditReader(loaded);
  if (filter.scope !== undefined) {
    const state = await storage.budgets.get(filter.scope);
    if (state === undefined) {
      throw new KeelError('KEEL_NOT_FOUND', `there is no budget ${filter.scope}`, {
        hint: 'run `keel budget show` to list the budgets that exist',
      });
    }
    return [state];
  }
  return storage.budgets.list(filter.prefix === undefined ? {} : { prefix: filter.prefix });
}

/**
 * Summarises recorded model usage; works while a node runs.
 *
 * @example
 * ```ts
 * const rows = await readUsage(loaded, { agentId }, ['model']);
 * ```
 */
export async function readUsage(
  loaded: LoadedConfiguration,
  filter: UsageFilter,
  groupBy: readonly UsageDimension[],
): Promise<readonly UsageSummaryRow[]> {
  await using storage = await openAuditReader(loaded);
  return storage.usage.summarize(filter, groupBy);
}

/**
 * An operator's change to a budget, with the node stopped (its lock is taken, so the audit
 * chain has one writer): `reset` zeroes spending and closes the breaker, `limits` sets the
 * given limits (keeping the others unless `replace`). Both are audited with the operator as actor.
 *
 * @example
 * ```ts
 * await administerBudget(loaded, 'agent:agt_1', { reset: true }, 'operator:ana');
 * ```
 */
export async function administerBudget(
  loaded: LoadedConfiguration,
  scope: BudgetScope,
  change:
    | { readonly reset: true }
    | { readonly limits: Partial<BudgetAmounts>; readonly replace?: boolean },
  actor: string,
): Promise<BudgetState> {
  const auditKey = existingAuditKey(loaded);
  const lock = await claimDataDirectory(loaded).catch((error: unknown) => {
    if (error instanceof KeelError && error.code === 'KEEL_DATA_DIR_LOCKED') {
      throw new KeelError(
        'KEEL_DATA_DIR_LOCKED',
        `a node is running on ${loaded.configuration.dataDirectory}`,
        {
          cause: error,
          hint: 'stop the node (budgets are changed with it stopped, so the audit log has one writer), then run this again',
        },
      );
    }
    throw error;
  });
  try {
    await using storage = await openSqliteStorage({
      path: loaded.configuration.databaseFile,
      auditKey,
      migrationMode: 'require-current',
    });
    const audit = new AuditLog(storage.audit, systemClock, auditKey);
    await audit.assertKeyMatches();
    const ledger = new BudgetLedger(storage.budgets, audit, systemClock);
    if ('reset' in change) return await ledger.reset(scope, actor);
    // Setting one limit keeps the others, unless the operator asked to replace them all.
    const current = change.replace === true ? undefined : await ledger.get(scope);
    return await ledger.setLimits(scope, { ...current?.limits, ...change.limits }, actor);
  } finally {
    await lock.release();
  }
}
