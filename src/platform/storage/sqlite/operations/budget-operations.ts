import { KeelError } from '../../../errors/keel-error.ts';
import {
  BUDGET_DIMENSIONS,
  type BudgetAmounts,
  type BudgetDimension,
  type BudgetScope,
  type BudgetState,
  type Reservation,
  type ReserveOutcome,
} from '../../ports/budget-store.ts';
import {
  fromJsonColumn,
  type HandlersFor,
  nullableNumber,
  type OperationContext,
  type Row,
} from './operation-context.ts';

const COLUMN: Readonly<Record<BudgetDimension, string>> = {
  tokens: 'tokens',
  costMicros: 'cost_micros',
  calls: 'calls',
  wallMs: 'wall_ms',
};

const SCOPE_PATTERN = /^(agent|run):[\w.-]{1,128}$/;

function checkScope(scope: string): asserts scope is BudgetScope {
  if (!SCOPE_PATTERN.test(scope)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `budget scope ${scope} is not agent:<id> or run:<id>`,
    );
  }
}

function checkAmounts(amounts: Partial<BudgetAmounts>, field: string, complete: boolean): void {
  for (const dimension of BUDGET_DIMENSIONS) {
    const value = amounts[dimension];
    if (value === undefined && !complete) continue;
    if (value === undefined || !Number.isSafeInteger(value) || value < 0) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `${field}.${dimension} must be a non-negative integer`,
      );
    }
  }
}

function amountsFrom(row: Row, prefix: string): BudgetAmounts {
  return {
    tokens: Number(row[`${prefix}tokens`]),
    costMicros: Number(row[`${prefix}cost_micros`]),
    calls: Number(row[`${prefix}calls`]),
    wallMs: Number(row[`${prefix}wall_ms`]),
  };
}

function toState(row: Row): BudgetState {
  const limits: Partial<Record<BudgetDimension, number>> = {};
  for (const dimension of BUDGET_DIMENSIONS) {
    const limit = nullableNumber(row[`limit_${COLUMN[dimension]}`]);
    if (limit !== null) limits[dimension] = limit;
  }
  return {
    scope: String(row.scope) as BudgetScope,
    limits,
    spent: amountsFrom(row, 'spent_'),
    reserved: amountsFrom(row, 'reserved_'),
    trippedAt: nullableNumber(row.tripped_at),
    parent: row.parent_scope === null ? null : (String(row.parent_scope) as BudgetScope),
    updatedAt: Number(row.updated_at),
  };
}

function read(context: OperationContext, scope: BudgetScope): BudgetState | undefined {
  const row = context.statements.get('SELECT * FROM budgets WHERE scope = ?').get(scope) as
    | Row
    | undefined;
  return row === undefined ? undefined : toState(row);
}

function ensure(context: OperationContext, scope: BudgetScope, now: number): BudgetState {
  // Read first: the row nearly always exists, and a read costs less than an upsert.
  const existing = read(context, scope);
  if (existing !== undefined) return existing;
  context.statements
    .get('INSERT INTO budgets (scope, updated_at) VALUES (?, ?) ON CONFLICT (scope) DO NOTHING')
    .run(scope, now);
  const state = read(context, scope);
  if (state === undefined) throw new KeelError('KEEL_INTERNAL', `budget ${scope} vanished`);
  return state;
}

/**
 * Moves amounts between the reserved and spent columns of every scope of a reservation, and
 * returns the scopes, not yet tripped, whose spending has now reached one of their limits.
 */
function adjust(
  context: OperationContext,
  scopes: readonly BudgetScope[],
  reservedDelta: BudgetAmounts,
  spentDelta: BudgetAmounts,
  now: number,
): BudgetScope[] {
  const update = context.statements.get(
    `UPDATE budgets SET
      reserved_tokens = max(0, reserved_tokens + ?), reserved_cost_micros = max(0, reserved_cost_micros + ?),
      reserved_calls = max(0, reserved_calls + ?), reserved_wall_ms = max(0, reserved_wall_ms + ?),
      spent_tokens = spent_tokens + ?, spent_cost_micros = spent_cost_micros + ?,
      spent_calls = spent_calls + ?, spent_wall_ms = spent_wall_ms + ?, updated_at = ?
    WHERE scope = ?
    RETURNING tripped_at IS NULL AND (
      spent_tokens >= limit_tokens OR spent_cost_micros >= limit_cost_micros
      OR spent_calls >= limit_calls OR spent_wall_ms >= limit_wall_ms
    ) AS spent_out`,
  );
  const spentOut: BudgetScope[] = [];
  for (const scope of scopes) {
    const row = update.get(
      reservedDelta.tokens,
      reservedDelta.costMicros,
      reservedDelta.calls,
      reservedDelta.wallMs,
      spentDelta.tokens,
      spentDelta.costMicros,
      spentDelta.calls,
      spentDelta.wallMs,
      now,
      scope,
    ) as Row | undefined;
    // A comparison with a missing limit (NULL) is NULL, never true: no limit is never reached.
    if (row !== undefined && Number(row.spent_out) === 1) spentOut.push(scope);
  }
  return spentOut;
}

function negate(amounts: BudgetAmounts): BudgetAmounts {
  return {
    tokens: -amounts.tokens,
    costMicros: -amounts.costMicros,
    calls: -amounts.calls,
    wallMs: -amounts.wallMs,
  };
}

const NOTHING: BudgetAmounts = { tokens: 0, costMicros: 0, calls: 0, wallMs: 0 };

function readReservation(context: OperationContext, id: string): Reservation {
  const row = context.statements.get('SELECT * FROM budget_reservations WHERE id = ?').get(id) as
    | Row
    | undefined;
  if (row === undefined) {
    throw new KeelError('KEEL_NOT_FOUND', `no open budget reservation ${id}`);
  }
  return toReservation(row);
}

/**
 * Takes `part` out of an open reservation (all of it when `part` is undefined) and answers
 * the reservation with the amounts taken; a reservation taken whole is closed.
 */
function takeReservation(
  context: OperationContext,
  id: string,
  part: BudgetAmounts | undefined,
): Reservation {
  const reservation = readReservation(context, id);
  if (part === undefined) {
    context.statements.get('DELETE FROM budget_reservations WHERE id = ?').run(id);
    return reservation;
  }
  checkAmounts(part, 'part', true);
  for (const dimension of BUDGET_DIMENSIONS) {
    if (part[dimension] > reservation.amounts[dimension]) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `part.${dimension} (${part[dimension]}) is more than reservation ${id} holds (${reservation.amounts[dimension]})`,
      );
    }
  }
  context.statements
    .get(
      'UPDATE budget_reservations SET tokens = tokens - ?, cost_micros = cost_micros - ?, calls = calls - ?, wall_ms = wall_ms - ? WHERE id = ?',
    )
    .run(part.tokens, part.costMicros, part.calls, part.wallMs, id);
  return { ...reservation, amounts: part };
}

function toReservation(row: Row): Reservation {
  return {
    id: String(row.id),
    scopes: fromJsonColumn<BudgetScope[]>(row.scopes),
    amounts: amountsFrom(row, ''),
    createdAt: Number(row.created_at),
  };
}

/** The deepest parent chain a budget may have. */
const MAX_BUDGET_DEPTH = 16;

/** The scopes and every ancestor of each, once, nearest first (rows are created as needed). */
function withAncestors(
  context: OperationContext,
  scopes: readonly BudgetScope[],
  now: number,
): BudgetScope[] {
  const all = new Set<BudgetScope>();
  for (const scope of scopes) {
    let current: BudgetScope | null = scope;
    for (let depth = 0; current !== null && !all.has(current); depth += 1) {
      if (depth > MAX_BUDGET_DEPTH) {
        throw new KeelError(
          'KEEL_INTERNAL',
          `budget ${scope} has a parent chain deeper than ${MAX_BUDGET_DEPTH}`,
        );
      }
      all.add(current);
      current = ensure(context, current, now).parent;
    }
  }
  return [...all];
}

function fitsWithin(state: BudgetState): boolean {
  return BUDGET_DIMENSIONS.every((dimension) => {
    const limit = state.limits[dimension];
    return limit === undefined || state.spent[dimension] + state.reserved[dimension] < limit;
  });
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const budgetOperations: HandlersFor<'budgets'> = {
  'budgets.setLimits': (context, scope, limits, now) => {
    checkScope(scope);
    checkAmounts(limits, 'limits', false);
    ensure(context, scope, now);
    context.statements
      .get(
        'UPDATE budgets SET limit_tokens = ?, limit_cost_micros = ?, limit_calls = ?, limit_wall_ms = ?, updated_at = ? WHERE scope = ?',
      )
      .run(
        limits.tokens ?? null,
        limits.costMicros ?? null,
        limits.calls ?? null,
        limits.wallMs ?? null,
        now,
        scope,
      );
    const state = ensure(context, scope, now);
    if (state.trippedAt !== null && fitsWithin(state)) {
      context.statements.get('UPDATE budgets SET tripped_at = NULL WHERE scope = ?').run(scope);
      return { ...state, trippedAt: null };
    }
    return state;
  },
  'budgets.get': (context, scope) => read(context, scope),
  'budgets.list': (context, filter = {}) => {
    const limit = Math.min(Math.max(1, filter.limit ?? 1_000), 10_000);
    const prefix = filter.prefix ?? '';
    // A range scan, not LIKE: the prefix is data, and `_` or `%` in it mean themselves.
    const rows = context.statements
      .get('SELECT * FROM budgets WHERE scope >= ? AND scope < ? ORDER BY scope LIMIT ?')
      .all(prefix, `${prefix}\u{10FFFF}`, limit) as Row[];
    return rows.map(toState);
  },
  'budgets.reserve': (context, request): ReserveOutcome => {
    if (request.scopes.length === 0) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'a reservation needs at least one scope');
    }
    for (const scope of request.scopes) checkScope(scope);
    checkAmounts(request.amounts, 'amounts', true);
    if (
      context.statements.get('SELECT 1 FROM budget_reservations WHERE id = ?').get(request.id) !==
      undefined
    ) {
      throw new KeelError('KEEL_CONFLICT', `reservation ${request.id} exists`);
    }
    if (request.upTo !== undefined) checkAmounts(request.upTo, 'upTo', true);
    const scopes = withAncestors(context, request.scopes, request.now);
    // What each dimension may take beyond the least: up to `upTo`, at most half of the room.
    const granted: Record<BudgetDimension, number> = { ...request.amounts };
    if (request.upTo !== undefined) {
      for (const dimension of BUDGET_DIMENSIONS) {
        granted[dimension] = Math.max(request.amounts[dimension], request.upTo[dimension]);
      }
    }
    let limitsCost = false;
    for (const scope of scopes) {
      const state = ensure(context, scope, request.now);
      limitsCost ||= state.limits.costMicros !== undefined;
      if (state.trippedAt !== null) {
        return {
          granted: false,
          scope,
          dimension: null,
          limit: null,
          spent: null,
          reserved: null,
          requested: null,
        };
      }
      for (const dimension of BUDGET_DIMENSIONS) {
        const limit = state.limits[dimension];
        if (limit === undefined) continue;
        const requested = request.amounts[dimension];
        // Refused, not tripped: what does not fit now may fit once reservations settle, and a
        // caller asking for too much must not lock its own budget. Spending trips (in settle).
        if (state.spent[dimension] + state.reserved[dimension] + requested > limit) {
          return {
            granted: false,
            scope,
            dimension,
            limit,
            spent: state.spent[dimension],
            reserved: state.reserved[dimension],
            requested,
          };
        }
        const room = limit - state.spent[dimension] - state.reserved[dimension];
        granted[dimension] = Math.max(
          requested,
          Math.min(granted[dimension], Math.floor(room / 2)),
        );
      }
    }
    adjust(context, scopes, granted, NOTHING, request.now);
    context.statements
      .get(
        'INSERT INTO budget_reservations (id, scopes, tokens, cost_micros, calls, wall_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        request.id,
        JSON.stringify(scopes),
        granted.tokens,
        granted.costMicros,
        granted.calls,
        granted.wallMs,
        request.now,
      );
    return { granted: true, amounts: granted, scopes, limitsCost };
  },
  'budgets.settle': (context, id, actual, now, part) => {
    checkAmounts(actual, 'actual', true);
    const reservation = takeReservation(context, id, part);
    // A call that used more than it reserved (a provider counting more input tokens than the
    // estimate) can reach a limit here: the breaker trips at once, so at most that one call
    // goes past it. Each scope's update returns what the check needs (one statement a scope).
    const tripped = adjust(context, reservation.scopes, negate(reservation.amounts), actual, now);
    for (const scope of tripped) {
      context.statements
        .get('UPDATE budgets SET tripped_at = ?, updated_at = ? WHERE scope = ?')
        .run(now, now, scope);
    }
    return tripped;
  },
  'budgets.release': (context, id, now, part) => {
    const reservation = takeReservation(context, id, part);
    adjust(context, reservation.scopes, negate(reservation.amounts), NOTHING, now);
  },
  'budgets.inherit': (context, child, parent, now) => {
    checkScope(child);
    checkScope(parent);
    if (child === parent) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `budget ${child} cannot inherit from itself`);
    }
    const existing = ensure(context, child, now);
    const untouched = BUDGET_DIMENSIONS.every(
      (dimension) => existing.spent[dimension] === 0 && existing.reserved[dimension] === 0,
    );
    if (existing.parent !== null || !untouched) {
      throw new KeelError(
        'KEEL_CONFLICT',
        `budget ${child} already has ${existing.parent === null ? 'spending' : `a parent (${existing.parent})`}`,
      );
    }
    const ancestors = withAncestors(context, [parent], now);
    if (ancestors.includes(child)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `budget ${parent} descends from ${child}`);
    }
    if (ancestors.length >= MAX_BUDGET_DEPTH) {
      throw new KeelError(
        'KEEL_CONFLICT',
        `budget ${parent} is already ${ancestors.length} levels deep`,
      );
    }
    // The child's own limits show what the chain had left when it was made; the chain itself
    // keeps being checked on every reservation, so siblings share what is left.
    const limits: Partial<Record<BudgetDimension, number>> = { ...existing.limits };
    for (const ancestor of ancestors) {
      const state = ensure(context, ancestor, now);
      for (const dimension of BUDGET_DIMENSIONS) {
        const limit = state.limits[dimension];
        if (limit === undefined) continue;
        const remaining = Math.max(0, limit - state.spent[dimension] - state.reserved[dimension]);
        limits[dimension] = Math.min(limits[dimension] ?? remaining, remaining);
      }
    }
    context.statements
      .get(
        'UPDATE budgets SET parent_scope = ?, limit_tokens = ?, limit_cost_micros = ?, limit_calls = ?, limit_wall_ms = ?, updated_at = ? WHERE scope = ?',
      )
      .run(
        parent,
        limits.tokens ?? null,
        limits.costMicros ?? null,
        limits.calls ?? null,
        limits.wallMs ?? null,
        now,
        child,
      );
    return ensure(context, child, now);
  },
  'budgets.reset': (context, scope, now) => {
    checkScope(scope);
    ensure(context, scope, now);
    context.statements
      .get(
        'UPDATE budgets SET spent_tokens = 0, spent_cost_micros = 0, spent_calls = 0, spent_wall_ms = 0, tripped_at = NULL, updated_at = ? WHERE scope = ?',
      )
      .run(now, scope);
    return ensure(context, scope, now);
  },
  'budgets.listOpenReservations': (context) =>
    (
      context.statements
        .get('SELECT * FROM budget_reservations ORDER BY created_at, id')
        .all() as Row[]
    ).map(toReservation),
};
