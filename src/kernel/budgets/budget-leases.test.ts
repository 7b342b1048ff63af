import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { createKernelHarness } from '../../../test/support/kernel-harness.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import type { BudgetScope, BudgetStore } from '../../platform/storage/ports/budget-store.ts';
import type { Storage } from '../../platform/storage/storage.ts';
import { AuditLog } from '../audit/audit-log.ts';
import { BudgetLedger } from './budget-ledger.ts';

/** The store with some of its methods replaced. */
function budgetsWith(store: BudgetStore, overrides: Partial<BudgetStore>): BudgetStore {
  const methods: Record<string, unknown> = {};
  for (const name of Object.getOwnPropertyNames(store)) {
    const value = (store as unknown as Record<string, unknown>)[name];
    if (typeof value === 'function') methods[name] = value.bind(store);
  }
  return { ...methods, ...overrides } as unknown as BudgetStore;
}

/** Storage whose budget store counts the reservations and settlements it is asked for. */
function countingReserves(counter: {
  reserves: number;
  settles?: number;
  releases?: number;
}): (storage: Storage) => Storage {
  return (storage) => ({
    ...storage,
    budgets: budgetsWith(storage.budgets, {
      reserve: (request) => {
        counter.reserves += 1;
        return storage.budgets.reserve(request);
      },
      settle: (...parameters) => {
        counter.settles = (counter.settles ?? 0) + 1;
        return storage.budgets.settle(...parameters);
      },
      release: (...parameters) => {
        counter.releases = (counter.releases ?? 0) + 1;
        return storage.budgets.release(...parameters);
      },
    }),
  });
}

const scopes: BudgetScope[] = ['agent:a', 'run:r1'];

describe('budget leases', () => {
  it('serves calls from one stored reservation and charges each call exactly', async () => {
    const counter = { reserves: 0, settles: 0, releases: 0 };
    await using harness = await createKernelHarness({ replaceStores: countingReserves(counter) });
    const { kernel, storage } = harness;
    for (let call = 0; call < 7; call += 1) {
      const reservation = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 100 });
      assert.equal(reservation.leased, true);
      await kernel.budgets.settle(reservation, { calls: 1, tokens: 30 + call });
    }
    assert.equal(counter.reserves, 1, 'seven calls, one storage reservation');
    // The eighth takes the lease's last room: the next lease is opened while it runs.
    const eighth = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 100 });
    assert.equal(counter.reserves, 2, 'the next lease is asked for before a call needs it');
    await kernel.budgets.settle(eighth, { calls: 1, tokens: 37 });
    // The lease it replaced had less than a call's room left: that goes back with what its
    // calls spent, in the settlement that closes it, not in a write of its own.
    assert.equal(counter.releases, 0, 'no separate hand-back of the replaced lease');
    const ninth = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 100 });
    assert.equal(ninth.leased, true);
    await kernel.budgets.settle(ninth, { calls: 1, tokens: 1 });
    assert.equal(counter.reserves, 2, 'the ninth draws on it');
    assert.equal(counter.settles, 1, 'what a lease served is written once, as it closes');
    await kernel.budgets.handBackLeases();
    assert.equal(counter.settles, 2);
    for (const scope of scopes) {
      const state = await storage.budgets.get(scope);
      assert.deepEqual(state?.spent, {
        tokens: 30 * 8 + 28 + 1,
        costMicros: 0,
        calls: 9,
        wallMs: 0,
      });
      assert.deepEqual(state?.reserved, { tokens: 0, costMicros: 0, calls: 0, wallMs: 0 });
    }
    assert.deepEqual(await storage.budgets.listOpenReservations(), []);
  });

  it('opens few leases for a burst of calls: they wait for the opening and size it', async () => {
    const counter = { reserves: 0 };
    await using harness = await createKernelHarness({ replaceStores: countingReserves(counter) });
    const { kernel, storage } = harness;
    const burst = await Promise.all(
      Array.from({ length: 32 }, () => kernel.budgets.reserve(scopes, { calls: 1 })),
    );
    assert.ok(burst.every((reservation) => reservation.leased));
    // The first opening covers 8 calls. The eighth, taking its last room, opens the next,
    // sized for 8 plus the 24 calls still waiting, so it covers them all with room to spare.
    assert.equal(counter.reserves, 2);
    assert.equal((await storage.budgets.get('agent:a'))?.reserved.calls, 8 + (8 + 24));
    for (const reservation of burst) await kernel.budgets.settle(reservation, { calls: 1 });
    await kernel.budgets.handBackLeases();
    assert.deepEqual(
      [
        (await storage.budgets.get('agent:a'))?.spent.calls,
        await storage.budgets.listOpenReservations(),
      ],
      [32, []],
    );
  });

  it('hands back a lease renewed ahead that opens after the leases were handed back', async () => {
    let holdNext = false;
    let opened: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      opened = resolve;
    });
    await using harness = await createKernelHarness({
      replaceStores: (storage) => ({
        ...storage,
        budgets: budgetsWith(storage.budgets, {
          reserve: async (request) => {
            if (!holdNext) return storage.budgets.reserve(request);
            holdNext = false;
            const outcome = await storage.budgets.reserve(request);
            await held;
            return outcome;
          },
        }),
      }),
    });
    const { kernel, storage } = harness;
    for (let call = 0; call < 7; call += 1) {
      const reservation = await kernel.budgets.reserve(scopes, { calls: 1 });
      await kernel.budgets.settle(reservation, { calls: 1 });
    }
    holdNext = true;
    const eighth = await kernel.budgets.reserve(scopes, { calls: 1 }); // the lease's last room
    assert.equal(holdNext, false, 'the renewal went to storage');
    await kernel.budgets.settle(eighth, { calls: 1 });
    // Stored, but not yet answered, when every lease is handed back (the node closing).
    const handingBack = kernel.budgets.handBackLeases();
    opened();
    await handingBack;
    assert.deepEqual(await storage.budgets.listOpenReservations(), []);
    assert.deepEqual((await storage.budgets.get('agent:a'))?.reserved.calls, 0);
    assert.deepEqual((await storage.budgets.get('agent:a'))?.spent.calls, 8);
  });

  it('closes a used-up lease with its last call in one write, and still opens its renewal', async () => {
    let holdNext = false;
    let opened: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const counter = { reserves: 0, settles: 0, releases: 0 };
    await using harness = await createKernelHarness({
      replaceStores: (storage) => {
        const counted = countingReserves(counter)(storage);
        return {
          ...counted,
          budgets: budgetsWith(counted.budgets, {
            reserve: async (request) => {
              const outcome = await counted.budgets.reserve(request);
              if (holdNext) {
                holdNext = false;
                await held;
              }
              return outcome;
            },
          }),
        };
      },
    });
    const { kernel, storage } = harness;
    for (let call = 0; call < 7; call += 1) {
      const reservation = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 10 });
      await kernel.budgets.settle(reservation, { calls: 1, tokens: 5 });
    }
    holdNext = true;
    const eighth = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 10 });
    // The renewal is stored but not yet answered when the last call of the old lease settles
    // (as when both travel in one transaction with the call's journal entry).
    await kernel.budgets.settle(eighth, { calls: 1, tokens: 5 });
    assert.equal(counter.settles, 1);
    assert.equal(
      (await storage.budgets.get('agent:a'))?.spent.tokens,
      40,
      'what its calls spent is written as it closes',
    );
    opened();
    const ninth = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 10 });
    assert.deepEqual([ninth.leased, counter.reserves], [true, 2], 'the ninth draws on the renewal');
    await kernel.budgets.settle(ninth, { calls: 1, tokens: 5 });
    await kernel.budgets.handBackLeases();
    // Each lease was written once, as it closed: no hand-back of the first after its close.
    assert.deepEqual([counter.settles, counter.releases], [2, 0]);
    assert.deepEqual(await storage.budgets.listOpenReservations(), []);
    assert.deepEqual((await storage.budgets.get('agent:a'))?.spent, {
      tokens: 45,
      costMicros: 0,
      calls: 9,
      wallMs: 0,
    });
    assert.equal((await storage.budgets.get('agent:a'))?.reserved.calls, 0);
  });

  it('does not renew ahead a lease its limits capped', async () => {
    const counter = { reserves: 0 };
    await using harness = await createKernelHarness({ replaceStores: countingReserves(counter) });
    const { kernel, storage } = harness;
    await kernel.budgets.setLimits('agent:a', { calls: 10 }, 'operator:ana');
    // Half the room: a lease for 5 calls, not the 8 asked for.
    for (let call = 0; call < 5; call += 1) {
      const reservation = await kernel.budgets.reserve(scopes, { calls: 1 });
      await kernel.budgets.settle(reservation, { calls: 1 });
    }
    assert.equal(counter.reserves, 1, 'its last call opened no lease ahead');
    const sixth = await kernel.budgets.reserve(scopes, { calls: 1 });
    await kernel.budgets.settle(sixth, { calls: 1 });
    assert.equal(counter.reserves, 2);
    await kernel.budgets.handBackLeases();
    assert.equal((await storage.budgets.get('agent:a'))?.spent.calls, 6);
  });

  it('never lets calls in flight pass a limit, and refuses only when no room is left', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    await kernel.budgets.setLimits('agent:a', { calls: 10 }, 'operator:ana');
    // Three runs of the agent take turns; idle room in another run's lease is handed back
    // rather than refusing a call.
    const runs: BudgetScope[][] = [1, 2, 3].map((run) => ['agent:a', `run:r${run}`]);
    let granted = 0;
    for (let call = 0; call < 10; call += 1) {
      const reservation = await kernel.budgets.reserve(runs[call % 3] ?? [], { calls: 1 });
      granted += 1;
      await kernel.budgets.settle(reservation, { calls: 1 });
    }
    assert.equal(granted, 10);
    const refused = await rejectsWithCode(
      kernel.budgets.reserve(runs[0] ?? [], { calls: 1 }),
      'KEEL_BUDGET_EXHAUSTED',
    );
    assert.match(refused.message, /is tripped/);
    assert.equal((await storage.budgets.get('agent:a'))?.spent.calls, 10);
  });

  it('holds a limit exactly under 50 concurrent calls', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    await kernel.budgets.setLimits('agent:a', { calls: 20 }, 'operator:ana');
    const attempts = await Promise.allSettled(
      Array.from({ length: 50 }, (_, index) =>
        kernel.budgets.reserve(['agent:a', `run:p${index % 5}`], { calls: 1 }),
      ),
    );
    const held = attempts.filter((attempt) => attempt.status === 'fulfilled');
    assert.equal(held.length, 20, 'every call that fits is let in, and no more');
    for (const attempt of attempts) {
      if (attempt.status === 'rejected') {
        assert.equal((attempt.reason as { code?: string }).code, 'KEEL_BUDGET_EXHAUSTED');
      }
    }
    const state = await storage.budgets.get('agent:a');
    assert.ok((state?.reserved.calls ?? 0) <= 20);
    for (const attempt of held) await kernel.budgets.settle(attempt.value, { calls: 1 });
    await kernel.budgets.handBackLeases();
    const after = await storage.budgets.get('agent:a');
    assert.equal(after?.spent.calls, held.length);
    assert.equal(after?.reserved.calls, 0);
  });

  it('makes lowered limits and a tripped breaker count at once, despite room in a lease', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 10_000 }, 'operator:ana');
    const first = await kernel.budgets.reserve(scopes, { tokens: 100 });
    await kernel.budgets.settle(first, { tokens: 100 });
    // The lease has room for more; lowered limits still refuse the next call.
    await kernel.budgets.setLimits('agent:a', { tokens: 150 }, 'operator:ana');
    const refused = await rejectsWithCode(
      kernel.budgets.reserve(scopes, { tokens: 100 }),
      'KEEL_BUDGET_EXHAUSTED',
    );
    assert.equal(refused.details.dimension, 'tokens');
    // A call that overspends trips the breaker; the lease it drew on serves no one after.
    await kernel.budgets.setLimits('agent:a', { tokens: 10_000 }, 'operator:ana');
    const big = await kernel.budgets.reserve(scopes, { tokens: 100 });
    await kernel.budgets.settle(big, { tokens: 9_950 });
    await rejectsWithCode(kernel.budgets.reserve(scopes, { tokens: 1 }), 'KEEL_BUDGET_EXHAUSTED');
    const trips = (await kernel.audit.tail(10)).filter((entry) => entry.kind === 'budget.trip');
    assert.equal(trips.length, 1);
  });

  it('gives a call refused by the approver back to the lease, and an idle lease back to storage', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    const reservation = await kernel.budgets.reserve(scopes, { calls: 1, tokens: 10 });
    await kernel.budgets.release(reservation);
    assert.equal((await storage.budgets.get('agent:a'))?.spent.calls, 0);
    // Idle past its time (1 s by default), the lease goes back by itself.
    const deadline = Date.now() + 5_000;
    while ((await storage.budgets.listOpenReservations()).length > 0) {
      assert.ok(Date.now() < deadline, 'the idle lease was not handed back');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual((await storage.budgets.get('agent:a'))?.reserved.tokens, 0);
  });

  it('after a crash charges what calls in flight held, and the unused room with it (fails closed)', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 1_000 }, 'operator:ana');
    await kernel.budgets.reserve(scopes, { tokens: 100 });
    // The node dies here: no settlement, no hand-back. The next start reconciles.
    const restarted = new BudgetLedger(
      storage.budgets,
      new AuditLog(storage.audit, systemClock, harness.auditKey),
      systemClock,
      { leaseCalls: 8 },
    );
    assert.equal(await restarted.reconcile('node:test'), 1);
    const state = await storage.budgets.get('agent:a');
    assert.ok((state?.spent.tokens ?? 0) >= 100, 'the call in flight is charged');
    assert.ok((state?.spent.tokens ?? 0) <= 500, 'at most the lease: half the room');
    assert.equal(state?.reserved.tokens, 0);
  });

  it('refuses by lowered limits even when they land while a lease is being opened', async () => {
    for (const order of ['reserve first', 'limits first']) {
      await using harness = await createKernelHarness();
      const { kernel } = harness;
      await kernel.budgets.setLimits('agent:a', { tokens: 10_000 }, 'operator:ana');
      // Both requests go to storage in one batch, and both answers come back together.
      const reserving = () => kernel.budgets.reserve(scopes, { tokens: 100 });
      const lowering = () => kernel.budgets.setLimits('agent:a', { tokens: 150 }, 'operator:ana');
      await Promise.all(
        order === 'reserve first' ? [reserving(), lowering()] : [lowering(), reserving()],
      );
      await rejectsWithCode(
        kernel.budgets.reserve(scopes, { tokens: 100 }),
        'KEEL_BUDGET_EXHAUSTED',
      );
    }
  });

  it('retires leases when a call on its own reservation trips a shared scope', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 100 }, 'operator:ana');
    await kernel.budgets.reserve(['agent:a', 'run:r1'], { tokens: 10 }); // a lease of 50
    // Does not fit beside that lease: its idle room goes back and this call reserves alone.
    const alone = await kernel.budgets.reserve(['agent:a', 'run:r2'], { tokens: 60 });
    assert.equal(alone.leased, false);
    const leased = await kernel.budgets.reserve(['agent:a', 'run:r1'], { tokens: 2 });
    assert.equal(leased.leased, true);
    await kernel.budgets.settle(alone, { tokens: 100 }); // the provider counted more: trips
    await rejectsWithCode(
      kernel.budgets.reserve(['agent:a', 'run:r1'], { tokens: 2 }),
      'KEEL_BUDGET_EXHAUSTED',
    );
  });

  it('checks calls with storage again once a call spent more than it reserved', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 100 }, 'operator:ana');
    const first = await kernel.budgets.reserve(scopes, { tokens: 10 });
    await kernel.budgets.settle(first, { tokens: 90 }); // 90 spent, 40 idle in the lease
    const outcomes = await Promise.allSettled(
      [0, 1, 2, 3].map(() => kernel.budgets.reserve(scopes, { tokens: 10 })),
    );
    assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 1);
    // The same when the overspending call shares only a parent budget with the lease.
    await kernel.budgets.setLimits('run:p', { tokens: 200 }, 'operator:ana');
    await kernel.budgets.inherit('run:c1', 'run:p', 'operator:ana');
    await kernel.budgets.inherit('run:c2', 'run:p', 'operator:ana');
    const sibling = await kernel.budgets.reserve(['run:c2'], { tokens: 10 });
    await kernel.budgets.settle(sibling, { tokens: 10 }); // a lease of run:c2 with room idle
    const over = await kernel.budgets.reserve(['run:c1'], { tokens: 10 });
    await kernel.budgets.settle(over, { tokens: 175 }); // run:p: 185 of 200 spent, no trip
    const siblings = await Promise.allSettled(
      [0, 1, 2, 3].map(() => kernel.budgets.reserve(['run:c2'], { tokens: 10 })),
    );
    assert.equal(siblings.filter((outcome) => outcome.status === 'fulfilled').length, 1);
  });

  it('leaves the share of a call storage could not settle for the next start to charge', async () => {
    await using harness = await createKernelHarness();
    const { storage } = harness;
    let failNext = false;
    const budgets = budgetsWith(storage.budgets, {
      settle: (...parameters) => {
        if (!failNext) return storage.budgets.settle(...parameters);
        failNext = false;
        return Promise.reject(new Error('disk full'));
      },
    });
    const audit = new AuditLog(storage.audit, systemClock, harness.auditKey);
    const ledger = new BudgetLedger(budgets, audit, systemClock, { leaseCalls: 8 });
    const reservation = await ledger.reserve(scopes, { tokens: 100 });
    failNext = true;
    // Spent more than its share: written at once, and storage fails.
    await assert.rejects(ledger.settle(reservation, { tokens: 150 }), /disk full/);
    await ledger.handBackLeases();
    const restarted = new BudgetLedger(storage.budgets, audit, systemClock);
    assert.equal(await restarted.reconcile('node:test'), 1);
    assert.equal((await storage.budgets.get('agent:a'))?.spent.tokens, 100, 'its share');
  });

  it('leaves a lease whose calls’ spending storage could not write for the next start to charge whole', async () => {
    await using harness = await createKernelHarness();
    const { storage } = harness;
    let fail = false;
    const budgets = budgetsWith(storage.budgets, {
      settle: (...parameters) =>
        fail ? Promise.reject(new Error('disk full')) : storage.budgets.settle(...parameters),
    });
    const audit = new AuditLog(storage.audit, systemClock, harness.auditKey);
    const ledger = new BudgetLedger(budgets, audit, systemClock, { leaseCalls: 8 });
    const reservation = await ledger.reserve(scopes, { tokens: 100 });
    await ledger.settle(reservation, { tokens: 60 });
    assert.equal((await storage.budgets.get('agent:a'))?.reserved.tokens, 800, 'still reserved');
    fail = true;
    await ledger.handBackLeases(); // closing the lease writes the 60: storage fails
    fail = false;
    const restarted = new BudgetLedger(storage.budgets, audit, systemClock);
    assert.equal(await restarted.reconcile('node:test'), 1);
    const state = await storage.budgets.get('agent:a');
    assert.equal(state?.spent.tokens, 800, 'the whole lease: never less than the call spent');
    assert.equal(state?.reserved.tokens, 0);
  });

  it('trips a scope that the spending written as a lease closes reaches, and audits it', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 200 }, 'operator:ana');
    for (let call = 0; call < 2; call += 1) {
      // A lease capped at half of what is left: the first holds 100, the second 100.
      const reservation = await kernel.budgets.reserve(scopes, { tokens: 100 });
      assert.equal(reservation.leased, true);
      await kernel.budgets.settle(reservation, { tokens: 100 });
    }
    await kernel.budgets.handBackLeases();
    const state = await storage.budgets.get('agent:a');
    assert.equal(state?.spent.tokens, 200);
    assert.notEqual(state?.trippedAt, null, 'the breaker tripped when the spending was written');
    const trips = (await kernel.audit.tail(10)).filter((entry) => entry.kind === 'budget.trip');
    assert.deepEqual(
      trips.map((entry) => entry.subject),
      ['agent:a'],
    );
    await rejectsWithCode(kernel.budgets.reserve(scopes, { tokens: 1 }), 'KEEL_BUDGET_EXHAUSTED');
  });

  it('trips at once when a call on a lease a limit capped brings spending to the limit', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 100 }, 'operator:ana');
    const chat = await kernel.budgets.reserve(scopes, { tokens: 100, calls: 1 });
    assert.equal(chat.leased, true, 'a lease capped at the 100 tokens left, with room for calls');
    await kernel.budgets.settle(chat, { tokens: 100, calls: 1 });
    // A tool call spends no tokens, but the breaker has tripped: it is refused.
    await rejectsWithCode(kernel.budgets.reserve(scopes, { calls: 1 }), 'KEEL_BUDGET_EXHAUSTED');
    const trips = (await kernel.audit.tail(10)).filter((entry) => entry.kind === 'budget.trip');
    assert.equal(trips.length, 1);
  });

  it('trips at once when the last room of a lease granted in full brings spending to a limit', async () => {
    await using harness = await createKernelHarness();
    const { kernel } = harness;
    await kernel.budgets.setLimits('agent:a', { tokens: 800 }, 'operator:ana');
    // Room for 8 calls of 50 is half of what is left: granted in full.
    const first = await kernel.budgets.reserve(scopes, { tokens: 50, calls: 1 });
    // Another run takes the other half and spends it.
    const other = await kernel.budgets.reserve(['agent:a', 'run:r2'], { tokens: 400, calls: 1 });
    await kernel.budgets.settle(other, { tokens: 400, calls: 1 });
    await kernel.budgets.settle(first, { tokens: 50, calls: 1 });
    for (let call = 1; call < 8; call += 1) {
      const reservation = await kernel.budgets.reserve(scopes, { tokens: 50, calls: 1 });
      assert.equal(reservation.leased, true);
      await kernel.budgets.settle(reservation, { tokens: 50, calls: 1 });
    }
    // 800 of 800 tokens spent: the breaker trips with the last call, not when the lease closes.
    await rejectsWithCode(kernel.budgets.reserve(scopes, { calls: 1 }), 'KEEL_BUDGET_EXHAUSTED');
    assert.equal((await harness.storage.budgets.get('agent:a'))?.spent.tokens, 800);
  });

  it('resets a budget with the spending its leases kept from before the reset', async () => {
    await using harness = await createKernelHarness();
    const { kernel, storage } = harness;
    const reservation = await kernel.budgets.reserve(scopes, { tokens: 100 });
    await kernel.budgets.settle(reservation, { tokens: 100 });
    await kernel.budgets.reset('agent:a', 'operator:ana');
    await kernel.budgets.handBackLeases();
    assert.equal((await storage.budgets.get('agent:a'))?.spent.tokens, 0);
    assert.equal((await storage.budgets.get('run:r1'))?.spent.tokens, 100, 'not reset');
  });

  it('reserves each call on its own when leases are off', async () => {
    await using harness = await createKernelHarness();
    const counter = { reserves: 0 };
    const ledger = new BudgetLedger(
      countingReserves(counter)(harness.storage).budgets,
      harness.kernel.audit,
      systemClock,
      { leaseCalls: 1 },
    );
    for (let call = 0; call < 3; call += 1) {
      const reservation = await ledger.reserve(scopes, { calls: 1 });
      assert.equal(reservation.leased, false);
      assert.equal(
        (await harness.storage.budgets.get('agent:a'))?.reserved.calls,
        1,
        'exactly the call',
      );
      await ledger.settle(reservation, { calls: 1 });
    }
    assert.equal(counter.reserves, 3);
    assert.equal((await harness.storage.budgets.get('agent:a'))?.spent.calls, 3);
  });
});
