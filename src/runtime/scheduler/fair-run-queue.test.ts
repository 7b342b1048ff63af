import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { FairRunQueue, type QueuedRun } from './fair-run-queue.ts';

function queued(runId: string, agentId: string, priority = 5, enqueuedAt = 0): QueuedRun {
  return { runId, agentId, priority, enqueuedAt };
}

function ids(runs: readonly QueuedRun[]): string[] {
  return runs.map((run) => run.runId);
}

function rejectsAsInvalid(action: () => unknown, field: string): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(isKeelError(error), 'a KeelError');
    assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
    assert.equal(error.details.field, field);
    return true;
  });
}

describe('FairRunQueue fairness', () => {
  it('serves a late agent within the first takes, not after a busy agent’s backlog', () => {
    const queue = new FairRunQueue({ maxConcurrent: 2, maxPerAgent: () => 100 });
    for (let index = 0; index < 100; index += 1) queue.enqueue(queued(`a-${index}`, 'a', 5, index));
    for (let index = 0; index < 3; index += 1)
      queue.enqueue(queued(`b-${index}`, 'b', 5, 100 + index));
    const takes: string[][] = [];
    for (let take = 0; take < 3; take += 1) {
      const runs = queue.takeReady();
      takes.push(ids(runs));
      for (const run of runs) queue.release(run.runId);
    }
    assert.deepEqual(takes, [
      ['a-0', 'b-0'],
      ['a-1', 'b-1'],
      ['a-2', 'b-2'],
    ]);
    assert.equal(queue.pendingCount, 97);
  });

  it('lets agents take turns, one run each, before any takes a second', () => {
    const queue = new FairRunQueue({ maxConcurrent: 1, maxPerAgent: () => 1 });
    const agents = Array.from({ length: 100 }, (_, index) => `agent-${index}`);
    let enqueuedAt = 0;
    for (let round = 0; round < 100; round += 1) {
      for (const agentId of agents) {
        queue.enqueue(queued(`${agentId}-${round}`, agentId, 5, enqueuedAt));
        enqueuedAt += 1;
      }
    }
    assert.equal(queue.pendingCount, 10_000);
    const order: string[] = [];
    for (;;) {
      const [run] = queue.takeReady();
      if (run === undefined) break;
      order.push(run.agentId);
      queue.release(run.runId);
    }
    assert.equal(order.length, 10_000);
    for (let window = 0; window < 100; window += 1) {
      const served = new Set(order.slice(window * 100, window * 100 + 100));
      assert.equal(served.size, 100, `round ${window} serves every agent once`);
    }
  });

  it('starts one agent’s runs in enqueuedAt order, whatever order they arrive in', () => {
    const queue = new FairRunQueue({ maxConcurrent: 10, maxPerAgent: () => 10 });
    queue.enqueue(queued('late', 'a', 5, 30));
    queue.enqueue(queued('early', 'a', 5, 10));
    queue.enqueue(queued('middle', 'a', 5, 20));
    queue.enqueue(queued('middle-again', 'a', 5, 20));
    assert.deepEqual(ids(queue.takeReady()), ['early', 'middle', 'middle-again', 'late']);
  });
});

describe('FairRunQueue priority', () => {
  it('takes a priority-9 run before waiting priority-5 runs', () => {
    const queue = new FairRunQueue({ maxConcurrent: 1, maxPerAgent: () => 5 });
    queue.enqueue(queued('a-low-1', 'a', 5, 1));
    queue.enqueue(queued('b-low-1', 'b', 5, 2));
    queue.enqueue(queued('a-low-2', 'a', 5, 3));
    queue.enqueue(queued('c-high', 'c', 9, 4));
    assert.deepEqual(ids(queue.takeReady()), ['c-high']);
  });

  it('prefers an agent’s own higher-priority run over its older ones', () => {
    const queue = new FairRunQueue({ maxConcurrent: 2, maxPerAgent: () => 5 });
    queue.enqueue(queued('old', 'a', 5, 1));
    queue.enqueue(queued('urgent', 'a', 9, 2));
    queue.enqueue(queued('background', 'a', 0, 0));
    assert.deepEqual(ids(queue.takeReady()), ['urgent', 'old']);
  });

  it('runs lower priorities when the higher priority agent is at its cap', () => {
    const queue = new FairRunQueue({
      maxConcurrent: 4,
      maxPerAgent: (agentId) => (agentId === 'a' ? 1 : 4),
    });
    queue.enqueue(queued('a-1', 'a', 9, 1));
    queue.enqueue(queued('a-2', 'a', 9, 2));
    queue.enqueue(queued('b-1', 'b', 1, 3));
    queue.enqueue(queued('b-2', 'b', 1, 4));
    assert.deepEqual(ids(queue.takeReady()), ['a-1', 'b-1', 'b-2']);
    assert.equal(queue.pendingCount, 1);
  });
});

describe('FairRunQueue limits', () => {
  it('holds an agent at its cap without blocking others', () => {
    const queue = new FairRunQueue({
      maxConcurrent: 10,
      maxPerAgent: (agentId) => (agentId === 'a' ? 1 : 2),
    });
    for (const agentId of ['a', 'b']) {
      for (let index = 1; index <= 3; index += 1) {
        queue.enqueue(queued(`${agentId}-${index}`, agentId, 5, index));
      }
    }
    assert.deepEqual(ids(queue.takeReady()).sort(), ['a-1', 'b-1', 'b-2']);
    assert.equal(queue.activeFor('a'), 1);
    assert.equal(queue.activeFor('b'), 2);
    assert.deepEqual(queue.takeReady(), []);
    assert.equal(queue.release('a-1'), true);
    assert.deepEqual(ids(queue.takeReady()), ['a-2']);
  });

  it('never has more than maxConcurrent runs active', () => {
    const queue = new FairRunQueue({ maxConcurrent: 3, maxPerAgent: () => 10 });
    for (let index = 0; index < 10; index += 1)
      queue.enqueue(queued(`r-${index}`, `agent-${index % 2}`));
    assert.equal(queue.takeReady().length, 3);
    assert.equal(queue.activeCount, 3);
    assert.deepEqual(queue.takeReady(), []);
    assert.equal(queue.pendingCount, 7);
  });

  it('holds all runs of an agent whose cap is 0', () => {
    const queue = new FairRunQueue({ maxConcurrent: 3, maxPerAgent: () => 0 });
    queue.enqueue(queued('r-1', 'a'));
    assert.deepEqual(queue.takeReady(), []);
    assert.equal(queue.pendingCount, 1);
  });

  it('takes more of an agent’s runs after its cap is raised and reconsidered', () => {
    const caps = new Map([['a', 1]]);
    const queue = new FairRunQueue({
      maxConcurrent: 5,
      maxPerAgent: (agentId) => caps.get(agentId) ?? 0,
    });
    queue.enqueue(queued('a-1', 'a', 5, 1));
    queue.enqueue(queued('a-2', 'a', 5, 2));
    assert.deepEqual(ids(queue.takeReady()), ['a-1']);
    caps.set('a', 2);
    queue.reconsider('a');
    assert.deepEqual(ids(queue.takeReady()), ['a-2']);
  });
});

describe('FairRunQueue pause and resume', () => {
  it('keeps a paused agent’s runs queued and takes them after resume', () => {
    const queue = new FairRunQueue({ maxConcurrent: 5, maxPerAgent: () => 5 });
    queue.pause('a');
    assert.equal(queue.isPaused('a'), true);
    queue.enqueue(queued('a-1', 'a', 9, 1));
    queue.enqueue(queued('a-2', 'a', 9, 2));
    queue.enqueue(queued('b-1', 'b', 1, 3));
    assert.deepEqual(ids(queue.takeReady()), ['b-1']);
    assert.equal(queue.pendingCount, 2);
    queue.resume('a');
    assert.equal(queue.isPaused('a'), false);
    assert.deepEqual(ids(queue.takeReady()), ['a-1', 'a-2']);
  });

  it('lets a paused agent’s active runs finish and release', () => {
    const queue = new FairRunQueue({ maxConcurrent: 5, maxPerAgent: () => 5 });
    queue.enqueue(queued('a-1', 'a', 5, 1));
    queue.enqueue(queued('a-2', 'a', 5, 2));
    queue.enqueue(queued('a-3', 'a', 5, 3));
    assert.equal(queue.takeReady().length, 3);
    queue.enqueue(queued('a-4', 'a', 5, 4));
    queue.pause('a');
    assert.equal(queue.release('a-1'), true);
    assert.deepEqual(queue.takeReady(), []);
    assert.equal(queue.activeFor('a'), 2);
    queue.resume('a');
    assert.deepEqual(ids(queue.takeReady()), ['a-4']);
  });
});

describe('FairRunQueue remove, release and duplicates', () => {
  it('removes a pending run so it is never taken', () => {
    const queue = new FairRunQueue({ maxConcurrent: 5, maxPerAgent: () => 5 });
    queue.enqueue(queued('r-1', 'a', 5, 1));
    queue.enqueue(queued('r-2', 'a', 5, 2));
    queue.enqueue(queued('r-3', 'a', 5, 3));
    assert.equal(queue.remove('r-2'), true);
    assert.equal(queue.remove('r-2'), false);
    assert.equal(queue.remove('unknown'), false);
    assert.equal(queue.pendingCount, 2);
    assert.deepEqual(ids(queue.takeReady()), ['r-1', 'r-3']);
  });

  it('does not remove an active run', () => {
    const queue = new FairRunQueue({ maxConcurrent: 5, maxPerAgent: () => 5 });
    queue.enqueue(queued('r-1', 'a'));
    queue.takeReady();
    assert.equal(queue.remove('r-1'), false);
    assert.equal(queue.activeCount, 1);
  });

  it('frees a slot on release and ignores unknown or repeated releases', () => {
    const queue = new FairRunQueue({ maxConcurrent: 1, maxPerAgent: () => 5 });
    queue.enqueue(queued('r-1', 'a', 5, 1));
    queue.enqueue(queued('r-2', 'a', 5, 2));
    assert.deepEqual(ids(queue.takeReady()), ['r-1']);
    assert.equal(queue.release('r-2'), false, 'a pending run is not active');
    assert.equal(queue.release('unknown'), false);
    assert.equal(queue.release('r-1'), true);
    assert.equal(queue.release('r-1'), false);
    assert.equal(queue.activeCount, 0);
    assert.deepEqual(ids(queue.takeReady()), ['r-2']);
  });

  it('ignores a duplicate run id while it is pending or active', () => {
    const queue = new FairRunQueue({ maxConcurrent: 5, maxPerAgent: () => 5 });
    assert.equal(queue.enqueue(queued('r-1', 'a')), true);
    assert.equal(queue.enqueue(queued('r-1', 'b', 9)), false);
    assert.equal(queue.pendingCount, 1);
    assert.deepEqual(ids(queue.takeReady()), ['r-1']);
    assert.equal(queue.enqueue(queued('r-1', 'a')), false);
    assert.deepEqual(queue.takeReady(), []);
    queue.release('r-1');
    assert.equal(queue.enqueue(queued('r-1', 'a')), true, 'a released id may run again');
  });
});

describe('FairRunQueue snapshot and validation', () => {
  it('lists pending runs in dispatch order', () => {
    const queue = new FairRunQueue({ maxConcurrent: 5, maxPerAgent: () => 5 });
    queue.enqueue(queued('a-1', 'a', 5, 1));
    queue.enqueue(queued('a-2', 'a', 5, 2));
    queue.enqueue(queued('b-1', 'b', 5, 3));
    queue.enqueue(queued('c-1', 'c', 9, 4));
    queue.enqueue(queued('a-0', 'a', 0, 0));
    assert.deepEqual(ids(queue.pending()), ['c-1', 'a-1', 'b-1', 'a-2', 'a-0']);
  });

  it('rejects invalid options and runs', () => {
    rejectsAsInvalid(
      () => new FairRunQueue({ maxConcurrent: 0, maxPerAgent: () => 1 }),
      'maxConcurrent',
    );
    rejectsAsInvalid(
      () => new FairRunQueue({ maxConcurrent: 1.5, maxPerAgent: () => 1 }),
      'maxConcurrent',
    );
    const queue = new FairRunQueue({ maxConcurrent: 1, maxPerAgent: () => 1 });
    rejectsAsInvalid(() => queue.enqueue(queued('', 'a')), 'runId');
    rejectsAsInvalid(() => queue.enqueue(queued('r', '')), 'agentId');
    rejectsAsInvalid(() => queue.enqueue(queued('r', 'a', 10)), 'priority');
    rejectsAsInvalid(() => queue.enqueue(queued('r', 'a', -1)), 'priority');
    rejectsAsInvalid(() => queue.enqueue(queued('r', 'a', 4.5)), 'priority');
    rejectsAsInvalid(() => queue.enqueue(queued('r', 'a', 5, Number.NaN)), 'enqueuedAt');
    assert.equal(queue.pendingCount, 0);
  });
});

type Operation =
  | {
      readonly kind: 'enqueue';
      readonly agent: number;
      readonly priority: number;
      readonly enqueuedAt: number;
      readonly reuse: number | undefined;
    }
  | { readonly kind: 'take' }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'remove'; readonly pick: number }
  | { readonly kind: 'pause'; readonly agent: number }
  | { readonly kind: 'resume'; readonly agent: number };

const AGENT_COUNT = 4;

const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('enqueue' as const),
      agent: fc.nat(AGENT_COUNT - 1),
      priority: fc.constantFrom(0, 5, 5, 9),
      enqueuedAt: fc.nat(20),
      reuse: fc.option(fc.nat(), { nil: undefined }),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ kind: 'take' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('pause' as const), agent: fc.nat(AGENT_COUNT - 1) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('resume' as const), agent: fc.nat(AGENT_COUNT - 1) }),
  },
);

interface ModelRun {
  readonly run: QueuedRun;
  /** Breaks enqueuedAt ties: arrival order. */
  readonly arrival: number;
}

describe('FairRunQueue properties', () => {
  it('keeps every limit, takes each enqueued run at most once and never while paused', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 3 }), {
          minLength: AGENT_COUNT,
          maxLength: AGENT_COUNT,
        }),
        fc.array(operationArbitrary, { maxLength: 150 }),
        (maxConcurrent, caps, operations) => {
          const agentIds = caps.map((_, index) => `agent-${index}`);
          const capOf = (agentId: string) => caps[agentIds.indexOf(agentId)] ?? 0;
          const queue = new FairRunQueue({ maxConcurrent, maxPerAgent: capOf });
          const pending = new Map<string, ModelRun>();
          const active = new Map<string, QueuedRun>();
          const known: string[] = [];
          const paused = new Set<string>();
          let arrival = 0;
          const activeOf = (agentId: string) =>
            [...active.values()].filter((run) => run.agentId === agentId).length;

          for (const operation of operations) {
            switch (operation.kind) {
              case 'enqueue': {
                const runId =
                  operation.reuse !== undefined && known.length > 0
                    ? (known[operation.reuse % known.length] as string)
                    : `run-${known.length}`;
                if (!known.includes(runId)) known.push(runId);
                const run = queued(
                  runId,
                  agentIds[operation.agent] as string,
                  operation.priority,
                  operation.enqueuedAt,
                );
                const expected = !pending.has(runId) && !active.has(runId);
                assert.equal(queue.enqueue(run), expected);
                if (expected) {
                  pending.set(runId, { run, arrival });
                  arrival += 1;
                }
                break;
              }
              case 'take': {
                const taken = queue.takeReady();
                let previousPriority = Number.POSITIVE_INFINITY;
                for (const run of taken) {
                  const waiting = pending.get(run.runId);
                  assert.ok(waiting !== undefined, `${run.runId} was pending when taken`);
                  assert.ok(
                    !paused.has(run.agentId),
                    `${run.runId} taken while its agent is paused`,
                  );
                  assert.ok(
                    run.priority <= previousPriority,
                    'one take goes from high to low priority',
                  );
                  previousPriority = run.priority;
                  for (const other of pending.values()) {
                    if (other.run.agentId !== run.agentId || other.run.priority !== run.priority)
                      continue;
                    const earlier =
                      other.run.enqueuedAt < run.enqueuedAt ||
                      (other.run.enqueuedAt === run.enqueuedAt && other.arrival < waiting.arrival);
                    assert.ok(
                      !earlier,
                      `${run.runId} overtook ${other.run.runId} of the same agent`,
                    );
                  }
                  pending.delete(run.runId);
                  active.set(run.runId, run);
                }
                assert.ok(active.size <= maxConcurrent, 'global cap');
                for (const agentId of agentIds) {
                  assert.ok(activeOf(agentId) <= Math.max(capOf(agentId), 0), `cap of ${agentId}`);
                }
                if (active.size < maxConcurrent) {
                  for (const { run } of pending.values()) {
                    const blocked =
                      paused.has(run.agentId) || activeOf(run.agentId) >= capOf(run.agentId);
                    assert.ok(blocked, `${run.runId} could start but was left waiting`);
                  }
                }
                break;
              }
              case 'release': {
                const activeIds = [...active.keys()];
                const runId =
                  activeIds.length > 0
                    ? (activeIds[operation.pick % activeIds.length] as string)
                    : 'missing';
                assert.equal(queue.release(runId), active.delete(runId));
                break;
              }
              case 'remove': {
                const runId =
                  known.length > 0 ? (known[operation.pick % known.length] as string) : 'missing';
                assert.equal(queue.remove(runId), pending.delete(runId));
                break;
              }
              case 'pause': {
                const agentId = agentIds[operation.agent] as string;
                queue.pause(agentId);
                paused.add(agentId);
                break;
              }
              case 'resume': {
                const agentId = agentIds[operation.agent] as string;
                queue.resume(agentId);
                paused.delete(agentId);
                break;
              }
            }
            assert.equal(queue.pendingCount, pending.size);
            assert.equal(queue.activeCount, active.size);
            for (const agentId of agentIds) {
              assert.equal(queue.activeFor(agentId), activeOf(agentId));
              assert.equal(queue.isPaused(agentId), paused.has(agentId));
            }
            assert.deepEqual(ids(queue.pending()).sort(), [...pending.keys()].sort());
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
