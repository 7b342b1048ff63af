import type { Clock } from '../../platform/clock/clock.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import {
  BUDGET_DIMENSIONS,
  type BudgetAmounts,
  type BudgetScope,
  type BudgetStore,
  type ReserveOutcome,
  ZERO_AMOUNTS,
} from '../../platform/storage/ports/budget-store.ts';

/**
 * One durable reservation several calls of the same scopes draw on. `available` is what no
 * call holds; the stored row always equals `available` plus what the calls in flight hold plus
 * the shares of calls that ended and are `owed`, so a crash (which charges open reservations in
 * full) charges every call in flight, every call not yet written and the unused rest: it fails
 * closed.
 */
interface Lease {
  readonly id: string;
  readonly key: string;
  /** The scopes charged, with every ancestor. */
  readonly scopes: ReadonlySet<BudgetScope>;
  available: Record<keyof BudgetAmounts, number>;
  inFlight: number;
  retired: boolean;
  /** A share of it could not be settled or released: it stays open for the next start. */
  stuck: boolean;
  /**
   * What the calls that ended spent (`actual`) out of their shares (`shares`), not yet
   * written: until it is (see `settle`), storage counts their shares as reserved.
   */
  owed:
    | { shares: Record<keyof BudgetAmounts, number>; actual: Record<keyof BudgetAmounts, number> }
    | undefined;
  idleSince: number;
  /** Granted as large as asked: no limit capped it, so it is renewed ahead of need. */
  readonly full: boolean;
  /** What storage granted it. */
  readonly granted: BudgetAmounts;
  /**
   * The most each dimension was asked for by one call of the leases it follows, itself
   * included: a renewal makes room for calls like any of them.
   */
  readonly perCall: BudgetAmounts;
}

/** A lease storage has granted. */
interface Opened {
  readonly granted: true;
  readonly id: string;
  readonly amounts: BudgetAmounts;
  readonly scopes: readonly BudgetScope[];
  readonly full: boolean;
  readonly limitsCost: boolean;
}

/** A call's share of a lease. */
export interface LeaseDraw {
  readonly leaseId: string;
  readonly amounts: BudgetAmounts;
}

export interface BudgetLeaseOptions {
  /** How many calls like the one that opens a lease it should cover (2 or more). */
  readonly calls: number;
  /** A lease no call used for this long is handed back. */
  readonly idleMs: number;
}

/**
 * Scopes that the spending a lease kept, once written, brought to a limit: they have tripped,
 * and the leases that charge them are retired. For the ledger to audit.
 */
export type LeaseTripped = (
  tripped: readonly BudgetScope[],
  leaseId: string,
  actual: BudgetAmounts,
) => Promise<void>;

/** How many openings a call waits for before it opens a lease itself. */
const MAX_WAITS = 4;

/** The most calls one lease is sized for, however many wait for it. */
const MAX_LEASE_CALLS = 64;

function fits(available: BudgetAmounts, amounts: BudgetAmounts): boolean {
  return BUDGET_DIMENSIONS.every((dimension) => amounts[dimension] <= available[dimension]);
}

function times(amounts: BudgetAmounts, calls: number): Record<keyof BudgetAmounts, number> {
  const product: Record<keyof BudgetAmounts, number> = { ...amounts };
  for (const dimension of BUDGET_DIMENSIONS) product[dimension] *= calls;
  return product;
}

function isEmpty(amounts: BudgetAmounts): boolean {
  return BUDGET_DIMENSIONS.every((dimension) => amounts[dimension] === 0);
}

type Owed = NonNullable<Lease['owed']>;

/** What a lease kept, with one more call's share and spending. */
function added(owed: Owed | undefined, shares: BudgetAmounts, actual: BudgetAmounts): Owed {
  const sum: Owed = {
    shares: { ...(owed?.shares ?? ZERO_AMOUNTS) },
    actual: { ...(owed?.actual ?? ZERO_AMOUNTS) },
  };
  for (const dimension of BUDGET_DIMENSIONS) {
    sum.shares[dimension] += shares[dimension];
    sum.actual[dimension] += actual[dimension];
  }
  return sum;
}

/** The lease has no room left in a dimension it was granted some of. */
function usedUp(lease: Lease): boolean {
  return BUDGET_DIMENSIONS.some(
    (dimension) => lease.granted[dimension] > 0 && lease.available[dimension] <= 0,
  );
}

/**
 * Budget leases: instead of a durable reservation per call, a call reserves room for several
 * calls like it at once, and the next calls of the same scopes take their share from that room
 * in memory — no storage round trip before they run. What a call spent within its share is
 * kept with its lease and written later, when that cannot delay a trip (see `settle`); until
 * then storage counts the call's share as reserved, so that limits hold and a crash charges
 * it. Limits hold exactly as with single reservations: a lease is room reserved against
 * every scope and ancestor, never more than half of what is left. When a call does not fit,
 * every idle share of the scopes it needs is handed back and the call is tried once more, so a
 * call is refused only when spending and calls in flight really leave no room.
 *
 * A lease is handed back when no call used it for `idleMs`, when a scope of it trips or gets
 * new limits, and when the node closes. After a crash its unused room, and the shares its
 * calls kept, are charged whole (the budget overstates spending by what of them went unspent;
 * it never understates it).
 */
export class BudgetLeases {
  readonly #store: BudgetStore;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #options: BudgetLeaseOptions;
  readonly #tripped: LeaseTripped | undefined;
  readonly #leases = new Map<string, Lease>();
  readonly #byId = new Map<string, Lease>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Leases being opened, by key: calls of the same scopes wait for them. */
  readonly #opening = new Map<string, Promise<void>>();
  /** Calls waiting for a lease of their key to open. */
  readonly #waiting = new Map<string, number>();
  /** Counts hand-backs: a lease opened across one serves only its opener. */
  #epoch = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    store: BudgetStore,
    clock: Clock,
    options: BudgetLeaseOptions,
    logger: Logger | undefined,
    tripped?: LeaseTripped,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#options = options;
    this.#logger = logger;
    this.#tripped = tripped;
  }

  /**
   * A share of the scopes' lease, or of a new lease (one storage round trip). When not even
   * `amounts` fit, the idle room of every lease of these scopes (and of the scope that
   * refused) is handed back and the call is tried once more as a reservation of its own, so
   * that it is refused only for spending and calls in flight; the store's refusal if it still
   * does not fit.
   */
  async draw(
    scopes: readonly BudgetScope[],
    amounts: BudgetAmounts,
  ): Promise<
    | {
        readonly kind: 'lease';
        readonly draw: LeaseDraw;
        /** Read with the limits, when this call opened the lease (see ReserveOutcome). */
        readonly limitsCost?: boolean;
      }
    | { readonly kind: 'own'; readonly id: string; readonly limitsCost: boolean }
    | { readonly kind: 'refused'; readonly outcome: ReserveOutcome & { readonly granted: false } }
  > {
    const key = scopes.join('\n');
    // Calls that arrive while a lease of their scopes is being opened wait for it rather
    // than each opening one (a few times at most: then they open their own).
    for (let waits = 0; ; waits += 1) {
      const lease = this.#leases.get(key);
      if (lease !== undefined && fits(lease.available, amounts)) {
        const draw = this.#take(lease, amounts);
        this.#renewIfSpent(lease, scopes, amounts);
        return { kind: 'lease', draw };
      }
      const opening = this.#opening.get(key);
      if (opening === undefined || waits >= MAX_WAITS) {
        if (lease !== undefined) this.#retire(lease);
        break;
      }
      this.#waiting.set(key, (this.#waiting.get(key) ?? 0) + 1);
      try {
        await opening;
      } finally {
        const left = (this.#waiting.get(key) ?? 1) - 1;
        if (left > 0) this.#waiting.set(key, left);
        else this.#waiting.delete(key);
      }
    }
    const epoch = this.#epoch;
    const calls = this.#callsFor(key);
    const opening = this.#open(scopes, amounts, times(amounts, calls));
    const settled = opening.then(
      () => undefined,
      () => undefined,
    );
    this.#opening.set(key, settled);
    let outcome: Awaited<typeof opening>;
    try {
      outcome = await opening;
    } finally {
      if (this.#opening.get(key) === settled) this.#opening.delete(key);
    }
    if (!outcome.granted) {
      this.retireCovering([...scopes, outcome.scope]);
      await this.#settled();
      const id = createId('rsv');
      const own = await this.#store.reserve({ id, scopes, amounts, now: this.#clock.now() });
      return own.granted
        ? { kind: 'own', id, limitsCost: own.limitsCost }
        : { kind: 'refused', outcome: own };
    }
    const opened = this.#lease(key, outcome, amounts);
    const draw = this.#take(opened, amounts);
    if (epoch !== this.#epoch) {
      // Leases were handed back while this one was being opened (limits changed, a scope
      // tripped or was overspent): it may be sized by what no longer holds, so it serves only
      // the call that opened it.
      this.#retire(opened);
      return { kind: 'lease', draw, limitsCost: outcome.limitsCost };
    }
    const replaced = this.#leases.get(key);
    if (replaced !== undefined) this.#retire(replaced);
    this.#leases.set(key, opened);
    this.#startSweeper();
    return { kind: 'lease', draw, limitsCost: outcome.limitsCost };
  }

  /**
   * How many calls a new lease of these scopes is sized for: the calls waiting for it as well,
   * so that a burst needs few openings.
   */
  #callsFor(key: string): number {
    return Math.min(MAX_LEASE_CALLS, this.#options.calls + (this.#waiting.get(key) ?? 0));
  }

  #lease(key: string, outcome: Opened, perCall: BudgetAmounts): Lease {
    const lease: Lease = {
      id: outcome.id,
      key,
      scopes: new Set(outcome.scopes),
      available: { ...outcome.amounts },
      inFlight: 0,
      retired: false,
      stuck: false,
      owed: undefined,
      idleSince: this.#clock.monotonic(),
      full: outcome.full,
      granted: outcome.amounts,
      perCall,
    };
    this.#byId.set(lease.id, lease);
    return lease;
  }

  /**
   * The lease a call has just drawn on has no room for another call like it: the next lease
   * of its scopes is opened now, while the call runs, so that the next call finds it ready
   * instead of waiting for storage (calls that come first wait for it, as for any opening).
   * Only a lease granted in full is renewed ahead: one that limits capped would come back
   * smaller each time, and a call that does not fit finds its own way (see {@link draw}). A
   * renewal refused is left for that call to meet; one that opens after leases were handed
   * back, or after another lease took the scopes' place, is handed back at once.
   */
  #renewIfSpent(lease: Lease, scopes: readonly BudgetScope[], amounts: BudgetAmounts): void {
    const key = lease.key;
    if (
      !lease.full ||
      lease.retired ||
      this.#leases.get(key) !== lease ||
      fits(lease.available, amounts) ||
      this.#opening.has(key)
    ) {
      return;
    }
    const epoch = this.#epoch;
    // Room for calls like any the lease served (they may differ in kind: a chat spends
    // tokens, a tool call does not), as many as a lease this call opened would hold.
    const perCall: Record<keyof BudgetAmounts, number> = { ...amounts };
    for (const dimension of BUDGET_DIMENSIONS) {
      perCall[dimension] = Math.max(amounts[dimension], lease.perCall[dimension]);
    }
    const calls = this.#callsFor(key);
    const renewal = this.#open(scopes, amounts, times(perCall, calls)).then(async (outcome) => {
      if (!outcome.granted) return;
      // The lease it follows may have closed meanwhile (its last call settled); another
      // lease in its place, or leases handed back, make this one stale.
      const current = this.#leases.get(key);
      if (epoch !== this.#epoch || (current !== undefined && current !== lease)) {
        await this.#store.release(outcome.id, this.#clock.now());
        return;
      }
      this.#retire(lease, false);
      this.#leases.set(key, this.#lease(key, outcome, perCall));
      this.#startSweeper();
    });
    const settled = renewal.catch((error: unknown) =>
      // Nothing was taken from it: the next call opens a lease on its own path.
      this.#logger?.warn({ err: error }, 'renewing a budget lease failed'),
    );
    this.#opening.set(key, settled);
    const done = settled.finally(() => {
      this.#pending.delete(done);
      if (this.#opening.get(key) === settled) this.#opening.delete(key);
    });
    this.#pending.add(done);
  }

  /**
   * Settles a call's share with what it actually spent; answers the scopes that tripped.
   *
   * What a call spent within its share is kept with the lease, and written when the lease is
   * retired or closes, when the lease is not far from a limit. Until then it cannot have brought
   * spending to a limit: a lease granted in full holds at most half of the room each limit had
   * left, so while some of its room in a dimension is unused, spending in that dimension is
   * below every limit the lease charges. So a call is written now, with what the lease kept,
   * when it spent more than its share, when its lease was capped by a limit, or when the
   * lease has no room left in a dimension it was granted. If storage fails, the shares stay in
   * the stored lease for the next start to charge.
   */
  async settle(draw: LeaseDraw, actual: BudgetAmounts): Promise<readonly BudgetScope[]> {
    const lease = this.#byId.get(draw.leaseId);
    if (
      lease !== undefined &&
      !lease.stuck &&
      fits(draw.amounts, actual) &&
      (lease.retired || (lease.full && !usedUp(lease)))
    ) {
      lease.owed = added(lease.owed, draw.amounts, actual);
      this.#finish(lease);
      return [];
    }
    // With what the lease kept: the settlement's check for a limit reached sees it all.
    const owed = added(lease?.owed, draw.amounts, actual);
    if (lease !== undefined) lease.owed = undefined;
    if (
      lease !== undefined &&
      !lease.stuck &&
      lease.inFlight === 1 &&
      (lease.retired || usedUp(lease))
    ) {
      // Its last call, and no call can draw on it again: this settlement closes it, the rest
      // handed back, in one statement rather than this write and a hand-back after it.
      this.#retire(lease, false);
      lease.inFlight = 0;
      this.#byId.delete(lease.id);
      try {
        return await this.#store.settle(draw.leaseId, owed.actual, this.#clock.now());
      } catch (error) {
        this.#logger?.warn(
          { err: error, reservation: lease.id },
          'a budget lease could not be closed; the next start charges what it holds',
        );
        throw error;
      }
    }
    try {
      return await this.#store.settle(draw.leaseId, owed.actual, this.#clock.now(), owed.shares);
    } catch (error) {
      if (lease !== undefined) this.#strand(lease);
      throw error;
    } finally {
      if (lease !== undefined) this.#finish(lease);
    }
  }

  /** Gives a call's share back unspent. */
  async release(draw: LeaseDraw): Promise<void> {
    const lease = this.#byId.get(draw.leaseId);
    if (lease !== undefined && !lease.retired) {
      for (const dimension of BUDGET_DIMENSIONS) {
        lease.available[dimension] += draw.amounts[dimension];
      }
      this.#finish(lease);
      return;
    }
    try {
      await this.#store.release(draw.leaseId, this.#clock.now(), draw.amounts);
    } catch (error) {
      if (lease !== undefined) this.#strand(lease);
      throw error;
    } finally {
      if (lease !== undefined) this.#finish(lease);
    }
  }

  /**
   * No call draws again on a lease that charges any of `scopes` (one tripped, was overspent
   * or gets new limits); their idle room goes back to storage, and leases being opened now
   * serve only their opener.
   */
  retireCovering(scopes: Iterable<BudgetScope>): void {
    this.#epoch += 1;
    const covered = new Set(scopes);
    for (const lease of [...this.#leases.values()]) {
      if ([...lease.scopes].some((scope) => covered.has(scope))) this.#retire(lease);
    }
  }

  /**
   * Hands back the idle room of every lease that charges `scope` (before its limits change or
   * a child inherits what it has left), and waits until storage has it.
   */
  async handBack(scope: BudgetScope): Promise<void> {
    this.retireCovering([scope]);
    await this.#settled();
  }

  /**
   * Hands back the idle room of every lease and waits until storage has it; what calls in
   * flight hold goes back as each settles.
   */
  async handBackAll(): Promise<void> {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.retireAll();
    await this.#settled();
  }

  /** No call draws again on any lease (a call spent more than it reserved). */
  retireAll(): void {
    this.#epoch += 1;
    for (const lease of [...this.#leases.values()]) this.#retire(lease);
  }

  #take(lease: Lease, amounts: BudgetAmounts): LeaseDraw {
    for (const dimension of BUDGET_DIMENSIONS) lease.available[dimension] -= amounts[dimension];
    lease.inFlight += 1;
    return { leaseId: lease.id, amounts };
  }

  async #open(
    scopes: readonly BudgetScope[],
    amounts: BudgetAmounts,
    upTo: BudgetAmounts,
  ): Promise<(ReserveOutcome & { readonly granted: false }) | Opened> {
    const id = createId('rsv');
    const outcome = await this.#store.reserve({
      id,
      scopes,
      amounts,
      upTo,
      now: this.#clock.now(),
    });
    if (!outcome.granted) return outcome;
    const full = BUDGET_DIMENSIONS.every(
      (dimension) => outcome.amounts[dimension] >= upTo[dimension],
    );
    return { ...outcome, id, full };
  }

  /** A call of the lease ended: a retired lease closes with its last call. */
  #finish(lease: Lease): void {
    lease.inFlight -= 1;
    if (lease.inFlight > 0) return;
    lease.idleSince = this.#clock.monotonic();
    if (lease.retired) this.#close(lease);
  }

  /**
   * No call may draw on it again. Its idle room goes back now, and what its calls kept is
   * written now, unless `promptly` is false: then both wait for its last call, whose
   * settlement closes it in one statement. A renewal passes false: the lease it replaces has
   * less than a call's room left and a call in flight, and nothing waits for that room.
   */
  #retire(lease: Lease, promptly = true): void {
    if (lease.retired) return;
    lease.retired = true;
    if (this.#leases.get(lease.key) === lease) this.#leases.delete(lease.key);
    if (lease.inFlight === 0) {
      this.#close(lease);
      return;
    }
    if (!promptly) return;
    const idle = { ...lease.available };
    lease.available = { ...ZERO_AMOUNTS };
    if (!isEmpty(idle)) this.#track(this.#store.release(lease.id, this.#clock.now(), idle));
    // Written now, before whatever retired it (new limits, a trip, a reset) takes effect.
    if (lease.owed !== undefined) this.#write(lease, lease.owed, true);
  }

  /**
   * Closes the stored lease: what the calls it served spent is charged and the rest handed
   * back, in one statement. A scope that spending reached trips (as a call's settlement would
   * have tripped it): no lease charging it serves again, and the ledger audits it.
   */
  #close(lease: Lease): void {
    this.#byId.delete(lease.id);
    const owed = lease.owed;
    if (lease.stuck) {
      // What the other calls spent is written; the share storage could not settle is not.
      if (owed !== undefined) this.#write(lease, owed, true);
      this.#logger?.warn(
        { reservation: lease.id },
        'a budget lease holds a share storage could not settle; the next start charges it',
      );
      return;
    }
    if (owed === undefined) this.#track(this.#store.release(lease.id, this.#clock.now()));
    else this.#write(lease, owed, false);
  }

  /**
   * Writes what a lease kept: only those shares (`part`), or, as the lease closes, with the
   * rest of it handed back. A scope that spending reached trips, as a call's own settlement
   * would have tripped it: no lease charging it serves again, and the ledger audits it.
   */
  #write(lease: Lease, owed: Owed, part: boolean): void {
    lease.owed = undefined;
    const now = this.#clock.now();
    const written = part
      ? this.#store.settle(lease.id, owed.actual, now, owed.shares)
      : this.#store.settle(lease.id, owed.actual, now);
    this.#track(
      written.then(async (tripped) => {
        if (tripped.length === 0) return;
        this.retireCovering(tripped);
        await this.#tripped?.(tripped, lease.id, owed.actual);
      }),
    );
  }

  /** Waits until storage has every hand-back sent so far. */
  async #settled(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  /**
   * Storage failed to settle or release a share: the share stays in the stored lease, which
   * is therefore never released whole — the next start charges it.
   */
  #strand(lease: Lease): void {
    lease.stuck = true;
    this.#retire(lease);
  }

  #track(write: Promise<unknown>): void {
    const tracked = write
      .catch((error: unknown) =>
        // The room stays reserved, which fails closed; the next start charges it.
        this.#logger?.warn({ err: error }, 'handing back a budget lease failed'),
      )
      .finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  #startSweeper(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => {
      const cutoff = this.#clock.monotonic() - this.#options.idleMs;
      for (const lease of [...this.#leases.values()]) {
        if (lease.inFlight === 0 && lease.idleSince <= cutoff) this.#retire(lease);
      }
      if (this.#leases.size === 0 && this.#sweeper !== undefined) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, this.#options.idleMs / 2);
    this.#sweeper.unref();
  }
}
