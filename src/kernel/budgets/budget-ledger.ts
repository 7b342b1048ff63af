import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import {
  BUDGET_DIMENSIONS,
  type BudgetAmounts,
  type BudgetScope,
  type BudgetState,
  type BudgetStore,
  type ReserveOutcome,
  ZERO_AMOUNTS,
} from '../../platform/storage/ports/budget-store.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { BudgetLeases } from './budget-leases.ts';

/** A granted reservation, to settle with the actual amounts or release. */
export interface BudgetReservation {
  /** The stored reservation: the call's own, or the lease it draws on. */
  readonly id: string;
  readonly scopes: readonly BudgetScope[];
  readonly amounts: BudgetAmounts;
  /** Whether the call holds a share of a lease rather than a reservation of its own. */
  readonly leased: boolean;
}

export interface BudgetLedgerOptions {
  /**
   * How many calls like it a reservation covers, as a lease that the next calls of the same
   * scopes draw on without a storage round trip; 1 reserves each call on its own.
   */
  readonly leaseCalls?: number;
  /** A lease no call used for this long is handed back (default 1 s). */
  readonly leaseIdleMs?: number;
  readonly logger?: Logger;
}

/**
 * The scopes a syscall is charged to.
 *
 * @example
 * ```ts
 * scopesFor('agt_1', 'run_1'); // ['agent:agt_1', 'run:run_1']
 * ```
 */
export function scopesFor(agentId: string, runId: string | undefined): BudgetScope[] {
  return runId === undefined ? [`agent:${agentId}`] : [`agent:${agentId}`, `run:${runId}`];
}

/**
 * Completes partial amounts with zeros and rounds up to whole units.
 *
 * @example
 * ```ts
 * toAmounts({ tokens: 10.2 }); // { tokens: 11, costMicros: 0, calls: 0, wallMs: 0 }
 * ```
 */
export function toAmounts(partial: Partial<BudgetAmounts> | undefined): BudgetAmounts {
  const amounts: Record<string, number> = { ...ZERO_AMOUNTS };
  for (const dimension of BUDGET_DIMENSIONS) {
    const value = partial?.[dimension];
    if (value !== undefined) {
      if (!Number.isFinite(value) || value < 0) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `budget amount ${dimension} must be a non-negative number`,
        );
      }
      amounts[dimension] = Math.ceil(value);
    }
  }
  return amounts as unknown as BudgetAmounts;
}

type Refused = Extract<ReserveOutcome, { readonly granted: false }>;

/** Calls a budget lease covers unless configured otherwise (`gate.budget_lease_calls`). */
export const DEFAULT_LEASE_CALLS = 8;

function overspent(actual: BudgetAmounts, reserved: BudgetAmounts): boolean {
  return BUDGET_DIMENSIONS.some((dimension) => actual[dimension] > reserved[dimension]);
}

/**
 * Budgets that cannot fail open: a reservation is taken before an effect and settled after it;
 * anything that goes wrong while reserving (a full budget, a storage fault) refuses the call.
 * A settlement that brings spending to a limit trips the scope's breaker, which stays open until
 * an operator resets the budget or raises its limits; every trip and operator action is audited.
 *
 * @example
 * ```ts
 * const reservation = await ledger.reserve(scopesFor(agentId, runId), { calls: 1, tokens: 2_000 });
 * try { … } finally { await ledger.settle(reservation, { calls: 1, tokens: used }); }
 * ```
 */
export class BudgetLedger {
  readonly #store: BudgetStore;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #leases: BudgetLeases | undefined;
  /** Whether a scope set limits cost, until a limit changes (see limitsCost). */
  readonly #limitsCost = new Map<string, boolean>();
  #limitsGeneration = 0;

  constructor(
    store: BudgetStore,
    audit: AuditLog,
    clock: Clock,
    options: BudgetLedgerOptions = {},
  ) {
    this.#store = store;
    this.#audit = audit;
    this.#clock = clock;
    const leaseCalls = options.leaseCalls ?? 1;
    this.#leases =
      leaseCalls > 1
        ? new BudgetLeases(
            store,
            clock,
            { calls: leaseCalls, idleMs: options.leaseIdleMs ?? 1_000 },
            options.logger,
            (tripped, leaseId, actual) =>
              this.#auditTrips(tripped, leaseId, actual).catch((error: unknown) =>
                options.logger?.error({ err: error }, 'a budget trip could not be audited'),
              ),
          )
        : undefined;
  }

  /**
   * Reserves amounts on every scope, or throws `KEEL_BUDGET_EXHAUSTED` (also when storage
   * cannot answer: a budget that cannot be checked is treated as spent).
   */
  async reserve(
    scopes: readonly BudgetScope[],
    partial: Partial<BudgetAmounts>,
  ): Promise<BudgetReservation> {
    const amounts = toAmounts(partial);
    let taken: BudgetReservation | Refused;
    try {
      taken = await this.#take(scopes, amounts);
    } catch (error) {
      throw new KeelError(
        'KEEL_BUDGET_EXHAUSTED',
        'the budget could not be checked, so the call is refused',
        {
          cause: error,
          details: { reason: toKeelError(error).code },
          hint: 'check storage; budgets fail closed',
        },
      );
    }
    if (!('granted' in taken)) return taken;
    const outcome = taken;
    const message =
      outcome.dimension === null
        ? `the budget ${outcome.scope} is tripped`
        : `the budget ${outcome.scope} has no room for ${outcome.requested} more ${outcome.dimension} (limit ${outcome.limit}, spent ${outcome.spent}, reserved ${outcome.reserved})`;
    throw new KeelError('KEEL_BUDGET_EXHAUSTED', message, {
      details: {
        scope: outcome.scope,
        dimension: outcome.dimension,
        limit: outcome.limit,
        spent: outcome.spent,
        reserved: outcome.reserved,
        requested: outcome.requested,
      },
    });
  }

  /** A share of a lease, or a reservation of the call's own; the store's refusal otherwise. */
  async #take(
    scopes: readonly BudgetScope[],
    amounts: BudgetAmounts,
  ): Promise<BudgetReservation | Refused> {
    const generation = this.#limitsGeneration;
    if (this.#leases === undefined) {
      const id = createId('rsv');
      const outcome = await this.#store.reserve({ id, scopes, amounts, now: this.#clock.now() });
      if (!outcome.granted) return outcome;
      this.#noteLimitsCost(scopes, outcome.limitsCost, generation);
      return { id, scopes, amounts, leased: false };
    }
    const drawn = await this.#leases.draw(scopes, amounts);
    if (drawn.kind === 'refused') return drawn.outcome;
    if (drawn.limitsCost !== undefined) this.#noteLimitsCost(scopes, drawn.limitsCost, generation);
    return drawn.kind === 'lease'
      ? { id: drawn.draw.leaseId, scopes, amounts, leased: true }
      : { id: drawn.id, scopes, amounts, leased: false };
  }

  /** Settles with the actual amounts; a scope whose spending reaches a limit trips (audited). */
  async settle(reservation: BudgetReservation, actual: Partial<BudgetAmounts>): Promise<void> {
    const amounts = toAmounts(actual);
    const leases = this.#leases;
    // A call that spent more than it reserved may leave less room than leases hold — on its
    // scopes or on a parent budget it shares with other scopes: from now on every call is
    // checked by storage again, after this settlement. Overspending is rare.
    if (leases !== undefined && overspent(amounts, reservation.amounts)) leases.retireAll();
    let tripped: readonly BudgetScope[];
    try {
      tripped =
        reservation.leased && leases !== undefined
          ? await leases.settle({ leaseId: reservation.id, amounts: reservation.amounts }, amounts)
          : await this.#store.settle(reservation.id, amounts, this.#clock.now());
    } catch (error) {
      // The settlement may have committed (and tripped a scope) with its answer lost.
      leases?.retireCovering(reservation.scopes);
      throw error;
    }
    if (tripped.length > 0) leases?.retireCovering(tripped);
    await this.#auditTrips(tripped, reservation.id, amounts);
  }

  async #auditTrips(
    tripped: readonly BudgetScope[],
    reservation: string,
    actual: BudgetAmounts,
  ): Promise<void> {
    for (const scope of tripped) {
      await this.#audit.record({
        kind: 'budget.trip',
        actor: 'kernel:budgets',
        subject: scope,
        outcome: 'tripped',
        code: 'KEEL_BUDGET_EXHAUSTED',
        data: { reason: 'spent', reservation, actual: { ...actual } },
      });
    }
  }

  release(reservation: BudgetReservation): Promise<void> {
    if (reservation.leased && this.#leases !== undefined) {
      return this.#leases.release({ leaseId: reservation.id, amounts: reservation.amounts });
    }
    return this.#store.release(reservation.id, this.#clock.now());
  }

  /**
   * Hands the unused room of every lease back to storage and waits for it (when the node
   * closes; afterwards a scope's `reserved` is exactly what calls in flight hold).
   */
  async handBackLeases(): Promise<void> {
    await this.#leases?.handBackAll();
  }

  get(scope: BudgetScope): Promise<BudgetState | undefined> {
    return this.#store.get(scope);
  }

  /** An operator sets a budget's limits (audited). */
  async setLimits(
    scope: BudgetScope,
    limits: Partial<BudgetAmounts>,
    actor: string,
  ): Promise<BudgetState> {
    this.#limitsChanged();
    await this.#leases?.handBack(scope);
    const state = await this.#store.setLimits(scope, limits, this.#clock.now());
    // A lease opened while the limits changed was sized by the old ones.
    await this.#leases?.handBack(scope);
    this.#limitsChanged();
    await this.#audit.record({
      kind: 'budget.limits',
      actor,
      subject: scope,
      outcome: 'set',
      data: { limits: { ...limits }, tripped: state.trippedAt !== null },
    });
    return state;
  }

  /**
   * A child run inherits what its parent has left (audited): its calls are charged to the
   * parent chain as well, so parent and children together never spend more than the parent's
   * limits.
   *
   * @example
   * ```ts
   * await ledger.inherit(`run:${childRunId}`, `run:${parentRunId}`, `agent:${agentId}`);
   * ```
   */
  async inherit(child: BudgetScope, parent: BudgetScope, actor: string): Promise<BudgetState> {
    this.#limitsChanged();
    // The child gets what the parent has left: room idle in leases is not spent.
    await this.#leases?.handBack(parent);
    const state = await this.#store.inherit(child, parent, this.#clock.now());
    this.#limitsChanged();
    await this.#audit.record({
      kind: 'budget.inherit',
      actor,
      subject: child,
      outcome: 'inherited',
      data: { parent, limits: { ...state.limits } },
    });
    return state;
  }

  /**
   * Whether any of the scopes, or an ancestor of one, limits cost. Remembered until a limit
   * changes through this ledger (the node is the only writer of limits while it runs).
   */
  async limitsCost(scopes: readonly BudgetScope[]): Promise<boolean> {
    const known = this.#limitsCost.get(scopes.join('\n'));
    if (known !== undefined) return known;
    const generation = this.#limitsGeneration;
    const limited = await this.#readLimitsCost(scopes);
    this.#noteLimitsCost(scopes, limited, generation);
    return limited;
  }

  /**
   * Remembers whether scopes limit cost, as storage read it (for {@link limitsCost}): a
   * reservation reads it with the limits it checks, so a run's first model call, reserved
   * before it runs, need not ask again. Not kept when limits changed since it was asked.
   */
  #noteLimitsCost(scopes: readonly BudgetScope[], limited: boolean, generation: number): void {
    if (generation !== this.#limitsGeneration) return;
    if (this.#limitsCost.size >= 10_000) this.#limitsCost.clear();
    this.#limitsCost.set(scopes.join('\n'), limited);
  }

  #limitsChanged(): void {
    this.#limitsGeneration += 1;
    this.#limitsCost.clear();
  }

  async #readLimitsCost(scopes: readonly BudgetScope[]): Promise<boolean> {
    // Level by level, each level's reads in one storage request.
    const seen = new Set<BudgetScope>();
    let level = [...new Set(scopes)];
    while (level.length > 0 && seen.size < 64) {
      for (const scope of level) seen.add(scope);
      const states = await Promise.all(level.map((scope) => this.#store.get(scope)));
      if (states.some((state) => state?.limits.costMicros !== undefined)) return true;
      level = [
        ...new Set(
          states.flatMap((state) =>
            state?.parent == null || seen.has(state.parent) ? [] : [state.parent],
          ),
        ),
      ];
    }
    return false;
  }

  /** An operator zeroes a budget's spending and closes its breaker (audited). */
  async reset(scope: BudgetScope, actor: string): Promise<BudgetState> {
    // What leases kept for calls made before the reset is spending from before it.
    await this.#leases?.handBack(scope);
    const before = await this.#store.get(scope);
    const state = await this.#store.reset(scope, this.#clock.now());
    await this.#audit.record({
      kind: 'budget.reset',
      actor,
      subject: scope,
      outcome: 'reset',
      data: { spentBefore: before === undefined ? null : { ...before.spent } },
    });
    return state;
  }

  /**
   * After a crash, reservations that were never settled are charged in full: the effect they
   * guarded may have happened, so the budget must not forget it. Returns how many there were.
   */
  async reconcile(actor: string): Promise<number> {
    const open = await this.#store.listOpenReservations();
    for (const reservation of open) {
      await this.#store.settle(reservation.id, reservation.amounts, this.#clock.now());
    }
    if (open.length > 0) {
      await this.#audit.record({
        kind: 'budget.reconcile',
        actor,
        outcome: 'charged',
        data: {
          reservations: open.length,
          ids: open.slice(0, 100).map((reservation) => reservation.id),
        },
      });
    }
    return open.length;
  }
}
