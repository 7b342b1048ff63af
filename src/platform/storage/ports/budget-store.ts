/** The dimensions a budget counts. Cost is in millionths of a US dollar. */
export interface BudgetAmounts {
  readonly tokens: number;
  readonly costMicros: number;
  readonly calls: number;
  readonly wallMs: number;
}

/**
 * The dimensions a budget counts, in a fixed order.
 */
export const BUDGET_DIMENSIONS = ['tokens', 'costMicros', 'calls', 'wallMs'] as const;
export type BudgetDimension = (typeof BUDGET_DIMENSIONS)[number];

/**
 * No amount in any dimension.
 */
export const ZERO_AMOUNTS: BudgetAmounts = Object.freeze({
  tokens: 0,
  costMicros: 0,
  calls: 0,
  wallMs: 0,
});

/** A budget's scope: `agent:<id>` or `run:<id>`. */
export type BudgetScope = `agent:${string}` | `run:${string}`;

export interface BudgetState {
  readonly scope: BudgetScope;
  /** Limits per dimension; a missing dimension is not limited. */
  readonly limits: Readonly<Partial<BudgetAmounts>>;
  readonly spent: BudgetAmounts;
  readonly reserved: BudgetAmounts;
  /** When the breaker tripped; `null` while closed. */
  readonly trippedAt: number | null;
  /** The scope this one inherited from: its reservations are charged there too. */
  readonly parent: BudgetScope | null;
  readonly updatedAt: number;
}

export interface ReservationRequest {
  readonly id: string;
  readonly scopes: readonly BudgetScope[];
  /** The least to reserve: when this does not fit, the reservation is refused. */
  readonly amounts: BudgetAmounts;
  /**
   * The most to reserve (a lease that later calls draw on): each dimension gets up to this,
   * but never more than half of what its tightest scope has left, nor less than `amounts`.
   */
  readonly upTo?: BudgetAmounts;
  readonly now: number;
}

export interface Reservation {
  readonly id: string;
  readonly scopes: readonly BudgetScope[];
  readonly amounts: BudgetAmounts;
  readonly createdAt: number;
}

export type ReserveOutcome =
  | {
      readonly granted: true;
      /** What was reserved: `amounts`, or more up to `upTo`. */
      readonly amounts: BudgetAmounts;
      /** The scopes charged: those asked for and every ancestor of each. */
      readonly scopes: readonly BudgetScope[];
      /** Whether any of those scopes limits cost (read with the limits it was checked against). */
      readonly limitsCost: boolean;
    }
  | {
      readonly granted: false;
      readonly scope: BudgetScope;
      /** The dimension that does not fit; `null` when the breaker was already open. */
      readonly dimension: BudgetDimension | null;
      readonly limit: number | null;
      readonly spent: number | null;
      readonly reserved: number | null;
      readonly requested: number | null;
    };

/**
 * Budget counters with reserve/settle. A reservation is checked against every scope and
 * recorded atomically: it fits all of them or none is touched; one that does not fit is refused.
 * A settlement that brings a scope's spending to a limit trips its breaker; a tripped scope
 * refuses every reservation until an operator resets it or raises its limits. Scopes without a
 * row are created on first use, unlimited.
 *
 * @example
 * ```ts
 * const outcome = await storage.budgets.reserve({ id, scopes: [`agent:${agentId}`], amounts, now });
 * if (outcome.granted) await storage.budgets.settle(id, actual, now);
 * ```
 */
export interface BudgetStore {
  /** Sets limits (replacing previous ones); closes the breaker if spending now fits. */
  setLimits(scope: BudgetScope, limits: Partial<BudgetAmounts>, now: number): Promise<BudgetState>;
  get(scope: BudgetScope): Promise<BudgetState | undefined>;
  /** Budgets in scope order, optionally only those whose scope starts with `prefix`. */
  list(filter?: {
    readonly prefix?: string;
    readonly limit?: number;
  }): Promise<readonly BudgetState[]>;
  reserve(request: ReservationRequest): Promise<ReserveOutcome>;
  /**
   * Replaces the reservation by the actual amounts, moving them to `spent`. Once per id. A
   * scope whose spending reaches a limit trips; the scopes tripped by this settlement are
   * returned. With `part`, only that part of the reservation is replaced and the rest stays
   * open (a lease settling one call it covered).
   */
  settle(
    id: string,
    actual: BudgetAmounts,
    now: number,
    part?: BudgetAmounts,
  ): Promise<readonly BudgetScope[]>;
  /** Cancels a reservation without spending; with `part`, only that part of it. */
  release(id: string, now: number, part?: BudgetAmounts): Promise<void>;
  /**
   * Makes `child` inherit from `parent`: its limits become what the parent (and each of the
   * parent's ancestors) has left now, and every later reservation on the child is also checked
   * against and charged to the parent chain. Fails with `KEEL_CONFLICT` when the child already
   * has spending or a parent, or when the parent chain would be longer than 16.
   */
  inherit(child: BudgetScope, parent: BudgetScope, now: number): Promise<BudgetState>;
  /** Zeroes spending and closes the breaker. */
  reset(scope: BudgetScope, now: number): Promise<BudgetState>;
  /** Reservations neither settled nor released (after a crash, they are settled in full). */
  listOpenReservations(): Promise<readonly Reservation[]>;
}
