import type { Clock } from '../../platform/clock/clock.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import {
  BUDGET_DIMENSIONS,
  type BudgetAmounts,
  type BudgetScope,
  type BudgetStore,
  type ReserveOutcome,
} from '../../platform/storage/ports/budget-store.ts';

/**
 * One durable reservation several calls of the same scopes draw on. `available` is what no
 * call holds; the stored row always equals `available` plus what the calls in flight hold, so
 * a crash (which charges open reservations in full) charges every call in flight and the
 * unused rest: it fails closed.
 */
interface Lease {
  readonly id: string;
  readonly key: string;
  /** The scopes charged, with every ancestor. */
  readonly scopes: ReadonlySet<BudgetScope>;
  available: Record<keyof BudgetAmounts, number>;
  inFlight: number;
  retired: boolean;
  idleSince: number;
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

function fits(available: BudgetAmounts, amounts: BudgetAmounts): boolean {
  return BUDGET_DIMENSIONS.every((dimension) => amounts[dimension] <= available[dimension]);
}

function isEmpty(amounts: BudgetAmounts): boolean {
  return BUDGET_DIMENSIONS.every((dimension) => amounts[dimension] === 0);
}

/**
 * Budget leases: instead of a durable reservation per call, a call reserves room for several
 * calls like it at once, and the next calls of the same scopes take their share from that room
 * in memory — no storage round trip before they run. Settling a call still writes its actual
 * spending (in the same commit as its journal and audit entries) and gives its share back to
 * storage. Limits hold exactly as with single reservations: a lease is room reserved against
 * every scope and ancestor, never more than half of what is left. When a call does not fit,
 * every idle share of the scopes it needs is handed back and the call is tried once more, so a
 * call is refused only when spending and calls in flight really leave no room.
 *
 * A lease is handed back when no call used it for `idleMs`, when a scope of it trips or gets
 * new limits, and when the node closes. After a crash its unused room is charged with the rest
 * (the budget overstates spending by at most that room; it never understates it).
 */
export class BudgetLeases {
  readonly #store: BudgetStore;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #options: BudgetLeaseOptions;
  readonly #leases = new Map<string, Lease>();
  readonly #byId = new Map<string, Lease>();
  readonly #pending = new Set<Promise<unknown>>();
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    store: BudgetStore,
    clock: Clock,
    options: BudgetLeaseOptions,
    logger: Logger | undefined,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#options = options;
    this.#logger = logger;
  }

  /**
   * A share of the scopes' lease, or of a new lease (one storage round trip). When not even
   * `amounts` fit, the idle room of every lease of these scopes is handed back and the call
   * is tried once more as a reservation of its own, so that it is refused only for spending
   * and calls in flight; the store's refusal if it still does not fit.
   */
  async draw(
    scopes: readonly BudgetScope[],
    amounts: BudgetAmounts,
  ): Promise<
    | { readonly kind: 'lease'; readonly draw: LeaseDraw }
    | { readonly kind: 'own'; readonly id: string }
    | { readonly kind: 'refused'; readonly outcome: ReserveOutcome }
  > {
    const key = scopes.join('\n');
    const lease = this.#leases.get(key);
    if (lease !== undefined && fits(lease.available, amounts)) {
      return { kind: 'lease', draw: this.#take(lease, amounts) };
    }
    if (lease !== undefined) this.#retire(lease);
    const outcome = await this.#open(scopes, amounts);
    if (!outcome.granted) {
      await this.#retireIdleRoom((candidate) =>
        scopes.some((scope) => candidate.scopes.has(scope)),
      );
      const id = createId('rsv');
      const own = await this.#store.reserve({ id, scopes, amounts, now: this.#clock.now() });
      return own.granted ? { kind: 'own', id } : { kind: 'refused', outcome: own };
    }
    const opened: Lease = {
      id: outcome.id,
      key,
      scopes: new Set(outcome.scopes),
      available: { ...outcome.amounts },
      inFlight: 0,
      retired: false,
      idleSince: 0,
    };
    const replaced = this.#leases.get(key);
    if (replaced !== undefined) this.#retire(replaced);
    this.#leases.set(key, opened);
    this.#byId.set(opened.id, opened);
    this.#startSweeper();
    return { kind: 'lease', draw: this.#take(opened, amounts) };
  }

  /** Settles a call's share with what it actually spent; answers the scopes that tripped. */
  async settle(draw: LeaseDraw, actual: BudgetAmounts): Promise<readonly BudgetScope[]> {
    const lease = this.#byId.get(draw.leaseId);
    const now = this.#clock.now();
    const settled = this.#store.settle(draw.leaseId, actual, now, draw.amounts);
    if (lease !== undefined) this.#finish(lease);
    const tripped = await settled;
    if (tripped.length > 0) {
      const set = new Set(tripped);
      for (const other of [...this.#leases.values()]) {
        if ([...other.scopes].some((scope) => set.has(scope))) this.#retire(other);
      }
    }
    return tripped;
  }

  /** Gives a call's share back unspent. */
  async release(draw: LeaseDraw): Promise<void> {
    const lease = this.#byId.get(draw.leaseId);
    if (lease !== undefined && !lease.retired) {
      for (const dimension of BUDGET_DIMENSIONS)
        lease.available[dimension] += draw.amounts[dimension];
      this.#finish(lease);
      return;
    }
    const released = this.#store.release(draw.leaseId, this.#clock.now(), draw.amounts);
    if (lease !== undefined) this.#finish(lease);
    await released;
  }

  /**
   * Hands back the idle room of every lease that charges `scope` (before its limits change or
   * a child inherits what it has left), and waits until storage has it.
   */
  async handBack(scope: BudgetScope): Promise<void> {
    await this.#retireIdleRoom((lease) => lease.scopes.has(scope));
  }

  /**
   * Hands back the idle room of every lease and waits until storage has it; what calls in
   * flight hold goes back as each settles.
   */
  async handBackAll(): Promise<void> {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    await this.#retireIdleRoom(() => true);
  }

  #take(lease: Lease, amounts: BudgetAmounts): LeaseDraw {
    for (const dimension of BUDGET_DIMENSIONS) lease.available[dimension] -= amounts[dimension];
    lease.inFlight += 1;
    return { leaseId: lease.id, amounts };
  }

  async #open(
    scopes: readonly BudgetScope[],
    amounts: BudgetAmounts,
  ): Promise<
    | (ReserveOutcome & { readonly granted: false })
    | {
        readonly granted: true;
        readonly id: string;
        readonly amounts: BudgetAmounts;
        readonly scopes: readonly BudgetScope[];
      }
  > {
    const upTo: Record<keyof BudgetAmounts, number> = { ...amounts };
    for (const dimension of BUDGET_DIMENSIONS) upTo[dimension] *= this.#options.calls;
    const id = createId('rsv');
    const outcome = await this.#store.reserve({
      id,
      scopes,
      amounts,
      upTo,
      now: this.#clock.now(),
    });
    return outcome.granted ? { ...outcome, id } : outcome;
  }

  /** A call of the lease ended: a retired lease closes with its last call. */
  #finish(lease: Lease): void {
    lease.inFlight -= 1;
    if (lease.inFlight > 0) return;
    lease.idleSince = this.#clock.monotonic();
    if (lease.retired) this.#close(lease);
  }

  /** No call may draw on it again; its idle room goes back now, the rest with its last call. */
  #retire(lease: Lease): void {
    if (lease.retired) return;
    lease.retired = true;
    if (this.#leases.get(lease.key) === lease) this.#leases.delete(lease.key);
    if (lease.inFlight === 0) {
      this.#close(lease);
      return;
    }
    const idle = { ...lease.available };
    lease.available = { tokens: 0, costMicros: 0, calls: 0, wallMs: 0 };
    if (!isEmpty(idle)) this.#track(this.#store.release(lease.id, this.#clock.now(), idle));
  }

  #close(lease: Lease): void {
    this.#byId.delete(lease.id);
    this.#track(this.#store.release(lease.id, this.#clock.now()));
  }

  /** Retires the leases `matches` picks and waits until storage has every hand-back. */
  async #retireIdleRoom(matches: (lease: Lease) => boolean): Promise<void> {
    for (const lease of [...this.#leases.values()]) {
      if (matches(lease)) this.#retire(lease);
    }
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
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
    }, this.#options.idleMs);
    this.#sweeper.unref();
  }
}
