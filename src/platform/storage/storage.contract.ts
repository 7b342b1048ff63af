/**
 * The shared contract of the storage port. Every adapter runs this same suite (see
 * `sqlite/sqlite-storage.test.ts`); a Postgres adapter must pass it unchanged.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { createId } from '../ids/create-id.ts';
import { AuditChainVerifier, type AuditDraft } from '../integrity/audit-chain.ts';
import type { BudgetAmounts, BudgetScope } from './ports/budget-store.ts';
import { forEachRun } from './ports/run-store.ts';
import type { Storage } from './storage.ts';

export interface StorageFactoryOptions {
  readonly auditKey: Uint8Array;
}

export type StorageFactory = (options: StorageFactoryOptions) => Promise<Storage>;

const T0 = Date.UTC(2026, 0, 1);

function draft(overrides: Partial<AuditDraft> = {}): AuditDraft {
  return {
    ts: T0,
    kind: 'test.event',
    actor: 'system',
    agentId: null,
    runId: null,
    subject: null,
    outcome: null,
    code: null,
    data: {},
    ...overrides,
  };
}

function amounts(partial: Partial<BudgetAmounts>): BudgetAmounts {
  return { tokens: 0, costMicros: 0, calls: 0, wallMs: 0, ...partial };
}

export function describeStorageContract(adapterName: string, factory: StorageFactory): void {
  describe(`storage contract: ${adapterName}`, () => {
    let storage: Storage;
    let auditKey: Uint8Array;

    beforeEach(async () => {
      auditKey = randomBytes(32);
      storage = await factory({ auditKey });
    });

    afterEach(async () => {
      await storage.close();
    });

    async function newAgent(name = `agent-${randomBytes(4).toString('hex')}`) {
      return storage.agents.create({ id: createId('agt'), name, trustLevel: 'standard', now: T0 });
    }

    describe('audit', () => {
      it('starts empty at the genesis head', async () => {
        assert.deepEqual(await storage.audit.head(), { seq: 0, hash: '0'.repeat(64) });
        assert.equal(await storage.audit.count(), 0);
      });

      it('chains appended entries with consecutive sequence numbers', async () => {
        const first = await storage.audit.append([draft({ kind: 'a' }), draft({ kind: 'b' })]);
        const second = await storage.audit.append([draft({ kind: 'c', data: { n: 1 } })]);
        assert.deepEqual(
          [...first, ...second].map((record) => record.seq),
          [1, 2, 3],
        );
        const stored = await storage.audit.read(1, 10);
        assert.equal(stored[0]?.prevHash, '0'.repeat(64));
        assert.equal(stored[1]?.prevHash, first[0]?.hash);
        assert.equal(stored[2]?.prevHash, first[1]?.hash);
        assert.deepEqual(
          stored.map((record) => record.hash),
          [...first, ...second].map((appended) => appended.hash),
        );
        assert.deepEqual(await storage.audit.head(), { seq: 3, hash: second[0]?.hash });
      });

      it('returns stored entries exactly as appended, and they verify with the key', async () => {
        const data = { nested: { list: [1, 'two', null, true], unicode: 'é✓' }, amount: 0.25 };
        await storage.audit.append([
          draft({
            kind: 'syscall.allow',
            actor: 'agent:x',
            agentId: 'x',
            runId: 'r',
            subject: 'tool.call shell',
            outcome: 'ok',
            data,
          }),
        ]);
        const [record] = await storage.audit.read(1, 10);
        assert.deepEqual(record?.data, data);
        assert.equal(record?.subject, 'tool.call shell');
        const verifier = new AuditChainVerifier(auditKey);
        assert.ok(record !== undefined && verifier.accept(record));
        const wrongKey = new AuditChainVerifier(randomBytes(32));
        assert.ok(record !== undefined && !wrongKey.accept(record));
      });

      it('stores text with lone surrogates so that it still verifies', async () => {
        await storage.audit.append([
          draft({
            subject: 'tool.call x\ud800y',
            actor: 'agent:\udfff',
            data: { text: 'a\ud800b' },
          }),
        ]);
        const [record] = await storage.audit.read(1, 1);
        const verifier = new AuditChainVerifier(auditKey);
        assert.ok(record !== undefined && verifier.accept(record), 'verifies after the round trip');
        assert.equal(record?.subject, 'tool.call x\ufffdy');
        assert.deepEqual(record?.data, { text: 'a\ud800b' });
      });

      it('keeps the chain gapless under many concurrent appends', async () => {
        await Promise.all(
          Array.from({ length: 300 }, (_, index) =>
            storage.audit.append([draft({ data: { index } })]),
          ),
        );
        const records = await storage.audit.read(1, 1000);
        assert.equal(records.length, 300);
        const verifier = new AuditChainVerifier(auditKey);
        for (const record of records) assert.ok(verifier.accept(record), `seq ${record.seq}`);
        assert.equal(verifier.checked, 300);
      });

      it('appends a batch atomically: one invalid draft writes nothing', async () => {
        await rejectsWithCode(
          storage.audit.append([draft(), draft({ kind: '' })]),
          'KEEL_INVALID_ARGUMENT',
        );
        assert.equal(await storage.audit.count(), 0);
        const [record] = await storage.audit.append([draft()]);
        assert.equal(record?.seq, 1);
      });

      it('refuses oversize entry data', async () => {
        await rejectsWithCode(
          storage.audit.append([draft({ data: { blob: 'x'.repeat(1024 * 1024 + 1) } })]),
          'KEEL_PAYLOAD_TOO_LARGE',
        );
        assert.equal(await storage.audit.count(), 0);
      });

      it('pages forward with read and backward with tail', async () => {
        await storage.audit.append(
          Array.from({ length: 25 }, (_, index) => draft({ data: { index } })),
        );
        const page = await storage.audit.read(11, 5);
        assert.deepEqual(
          page.map((record) => record.seq),
          [11, 12, 13, 14, 15],
        );
        const tail = await storage.audit.tail(3);
        assert.deepEqual(
          tail.map((record) => record.seq),
          [23, 24, 25],
        );
        assert.equal(await storage.audit.count(), 25);
      });
    });

    describe('agents', () => {
      it('creates, finds and lists agents', async () => {
        const agent = await newAgent('alpha');
        assert.equal(agent.state, 'created');
        assert.deepEqual(await storage.agents.get(agent.id), agent);
        assert.deepEqual(await storage.agents.getByName('alpha'), agent);
        assert.equal(await storage.agents.get('agt_missing'), undefined);
        await newAgent('beta');
        assert.deepEqual(
          (await storage.agents.list()).map((listed) => listed.name),
          ['alpha', 'beta'],
        );
      });

      it('refuses a duplicate name', async () => {
        await newAgent('same');
        await rejectsWithCode(newAgent('same'), 'KEEL_CONFLICT');
      });

      it('moves state only from the expected state', async () => {
        const agent = await newAgent();
        const starting = await storage.agents.updateState(agent.id, 'starting', T0 + 1, 'created');
        assert.equal(starting.state, 'starting');
        assert.equal(starting.updatedAt, T0 + 1);
        await rejectsWithCode(
          storage.agents.updateState(agent.id, 'running', T0 + 2, 'created'),
          'KEEL_CONFLICT',
        );
        await rejectsWithCode(
          storage.agents.updateState('agt_missing', 'running', T0),
          'KEEL_NOT_FOUND',
        );
      });

      it('lets exactly one of two racing transitions win', async () => {
        const agent = await newAgent();
        const outcomes = await Promise.allSettled([
          storage.agents.updateState(agent.id, 'starting', T0, 'created'),
          storage.agents.updateState(agent.id, 'disabled', T0, 'created'),
        ]);
        assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 1);
      });

      it('keeps every transition in the agent history, newest last', async () => {
        const agent = await newAgent();
        await storage.agents.updateState(agent.id, 'starting', T0 + 1, 'created', 'deployed');
        await storage.agents.updateState(agent.id, 'running', T0 + 2, 'starting', 'worker ready');
        await rejectsWithCode(
          storage.agents.updateState(agent.id, 'paused', T0 + 3, 'created', 'stale'),
          'KEEL_CONFLICT',
        );
        const history = await storage.agents.history(agent.id, 10);
        assert.deepEqual(
          history.map((change) => [change.from, change.to, change.reason, change.at]),
          [
            ['created', 'starting', 'deployed', T0 + 1],
            ['starting', 'running', 'worker ready', T0 + 2],
          ],
        );
        assert.equal((await storage.agents.history(agent.id, 1))[0]?.to, 'running');
      });

      it('changes the trust level', async () => {
        const agent = await newAgent();
        const trusted = await storage.agents.setTrustLevel(agent.id, 'trusted', T0 + 5);
        assert.equal(trusted.trustLevel, 'trusted');
      });
    });

    describe('runs and journals', () => {
      it('creates runs only for existing agents', async () => {
        await rejectsWithCode(
          storage.runs.create({ id: createId('run'), agentId: 'agt_missing', task: {}, now: T0 }),
          'KEEL_NOT_FOUND',
        );
      });

      it('records status changes and results', async () => {
        const agent = await newAgent();
        const run = await storage.runs.create({
          id: createId('run'),
          agentId: agent.id,
          task: { goal: 'x' },
          now: T0,
        });
        assert.equal(run.status, 'pending');
        const suspended = await storage.runs.updateStatus(run.id, 'suspended', T0 + 8, {
          code: 'KEEL_APPROVAL_REQUIRED',
        });
        assert.deepEqual(
          [suspended.status, suspended.error],
          ['suspended', { code: 'KEEL_APPROVAL_REQUIRED' }],
        );
        // Requeued once: a second resumption finds it pending and leaves it.
        const requeued = await storage.runs.requeueSuspended(run.id, T0 + 8);
        assert.deepEqual(
          [requeued.requeued, requeued.run.status, requeued.run.error],
          [true, 'pending', { code: 'KEEL_APPROVAL_REQUIRED' }],
        );
        const twice = await storage.runs.requeueSuspended(run.id, T0 + 8);
        assert.deepEqual([twice.requeued, twice.run.status], [false, 'pending']);
        await storage.runs.startAttempt(run.id, T0 + 8, 3);
        const running = await storage.runs.requeueSuspended(run.id, T0 + 8);
        assert.deepEqual([running.requeued, running.run.status], [false, 'running']);
        await rejectsWithCode(storage.runs.requeueSuspended('run_missing', T0), 'KEEL_NOT_FOUND');
        const { run: done } = await storage.runs.end(run.id, 'succeeded', T0 + 9, { answer: 42 });
        assert.equal(done.status, 'succeeded');
        assert.deepEqual(done.result, { answer: 42 });
        // Nothing brings an ended run back, and nothing but end ends one.
        const kept = await storage.runs.updateStatus(run.id, 'pending', T0 + 10);
        assert.deepEqual([kept.status, kept.updatedAt], ['succeeded', T0 + 9]);
        await rejectsWithCode(
          storage.runs.updateStatus(run.id, 'failed' as never, T0 + 10),
          'KEEL_INVALID_ARGUMENT',
        );
        assert.deepEqual(
          (await storage.runs.list({ agentId: agent.id, status: 'succeeded' })).map(
            (listed) => listed.id,
          ),
          [run.id],
        );
        assert.deepEqual(await storage.runs.list({ status: 'failed' }), []);
      });

      it('pages through runs after a given one, newest first, ties broken by id', async () => {
        const agent = await newAgent();
        const ids: string[] = [];
        // Two runs share each creation time: the page boundary falls between them.
        for (let index = 0; index < 5; index += 1) {
          const run = await storage.runs.create({
            id: createId('run'),
            agentId: agent.id,
            task: {},
            now: T0 + Math.floor(index / 2),
          });
          ids.push(run.id);
        }
        const expected = (await storage.runs.list({ agentId: agent.id })).map((run) => run.id);
        assert.equal(expected.length, 5);
        const paged: string[] = [];
        let after: { createdAt: number; id: string } | undefined;
        for (let page = 0; page < 5; page += 1) {
          const listed = await storage.runs.list({
            agentId: agent.id,
            limit: 2,
            ...(after === undefined ? {} : { after }),
          });
          paged.push(...listed.map((run) => run.id));
          const last = listed.at(-1);
          if (listed.length < 2 || last === undefined) break;
          after = { createdAt: last.createdAt, id: last.id };
        }
        assert.deepEqual(paged, expected, 'every run once, in the same order');
        assert.deepEqual(new Set(paged), new Set(ids));
        const visited: string[] = [];
        const count = await forEachRun(storage.runs, { agentId: agent.id }, (run) => {
          visited.push(run.id);
        });
        assert.deepEqual([count, visited], [5, expected]);
      });

      it('counts attempts, keeps errors and filters by several statuses', async () => {
        const agent = await newAgent();
        const run = await storage.runs.create({
          id: createId('run'),
          agentId: agent.id,
          task: {},
          now: T0,
          priority: 8,
          origin: 'schedule:0',
        });
        assert.deepEqual(
          [run.priority, run.attempts, run.origin, run.error],
          [8, 0, 'schedule:0', null],
        );
        const first = await storage.runs.startAttempt(run.id, T0 + 1, 3);
        assert.deepEqual(
          [first.outcome, first.run.status, first.run.attempts, first.journalHead],
          ['started', 'running', 1, 0],
        );
        await storage.runs.appendJournal({
          runId: run.id,
          seq: 1,
          kind: 'clock.now',
          intentDigest: 'd1',
          outcome: 'ok',
          result: T0,
          recordedAt: T0 + 1,
        });
        const second = await storage.runs.startAttempt(run.id, T0 + 2, 3);
        assert.deepEqual([second.run.attempts, second.journalHead], [2, 1]);
        const returned = await storage.runs.returnAttempt(run.id, T0 + 2);
        assert.deepEqual([returned.status, returned.attempts], ['pending', 1]);
        assert.equal((await storage.runs.startAttempt(run.id, T0 + 2, 3)).run.attempts, 2);
        // At its agent's maxAttempts a run is not started again, and is left as it was.
        const exhausted = await storage.runs.startAttempt(run.id, T0 + 2, 2);
        assert.deepEqual(
          [exhausted.outcome, exhausted.run.status, exhausted.run.attempts],
          ['exhausted', 'running', 2],
        );
        const failed = await storage.runs.end(run.id, 'dead-lettered', T0 + 3, undefined, {
          code: 'KEEL_WORKER_CRASHED',
        });
        assert.equal(failed.ended, true);
        assert.deepEqual(failed.run.error, { code: 'KEEL_WORKER_CRASHED' });
        // An ended run is not started again, nor ended a second time.
        const ended = await storage.runs.startAttempt(run.id, T0 + 4, 3);
        assert.deepEqual(
          [ended.outcome, ended.run.status, ended.run.attempts, ended.journalHead],
          ['ended', 'dead-lettered', 2, 1],
        );
        const again = await storage.runs.end(run.id, 'succeeded', T0 + 4, { late: true });
        assert.deepEqual(
          [again.ended, again.run.status, again.run.result],
          [false, 'dead-lettered', null],
        );
        await rejectsWithCode(
          storage.runs.end(run.id, 'running' as never, T0 + 4),
          'KEEL_INVALID_ARGUMENT',
        );
        await rejectsWithCode(storage.runs.startAttempt('run_missing', T0, 3), 'KEEL_NOT_FOUND');
        await rejectsWithCode(storage.runs.end('run_missing', 'failed', T0), 'KEEL_NOT_FOUND');
        const kept = await storage.runs.returnAttempt(run.id, T0 + 4);
        assert.deepEqual([kept.status, kept.attempts], ['dead-lettered', 2]);
        assert.deepEqual(
          (await storage.runs.list({ statuses: ['pending', 'dead-lettered'] })).map(
            (listed) => listed.id,
          ),
          [run.id],
        );
        assert.deepEqual(await storage.runs.list({ statuses: [] }), []);
        assert.deepEqual(await storage.runs.journalCounts([run.id]), { [run.id]: 1 });
      });

      it('writes each journal sequence number once', async () => {
        const agent = await newAgent();
        const run = await storage.runs.create({
          id: createId('run'),
          agentId: agent.id,
          task: {},
          now: T0,
        });
        const entry = {
          runId: run.id,
          seq: 1,
          kind: 'clock.now',
          intentDigest: 'd1',
          outcome: 'ok' as const,
          result: T0,
          recordedAt: T0,
        };
        await storage.runs.appendJournal(entry);
        await rejectsWithCode(
          storage.runs.appendJournal({ ...entry, result: T0 + 1 }),
          'KEEL_CONFLICT',
        );
        assert.deepEqual(await storage.runs.getJournal(run.id, 1), entry);
        await storage.runs.appendJournal({
          ...entry,
          seq: 2,
          outcome: 'error',
          result: { code: 'KEEL_TIMEOUT' },
        });
        assert.deepEqual(
          (await storage.runs.listJournal(run.id)).map((journal) => journal.seq),
          [1, 2],
        );
        assert.equal(await storage.runs.getJournal(run.id, 3), undefined);
        assert.equal(await storage.runs.journalHead(run.id), 2);
        assert.equal(await storage.runs.journalHead('run_without_journal'), 0);
      });
    });

    describe('approvals', () => {
      async function pending(expiresIn = 60_000) {
        const agent = await newAgent();
        return storage.approvals.create({
          id: createId('apr'),
          agentId: agent.id,
          runId: null,
          seq: null,
          kind: 'tool.call',
          resource: 'shell',
          intentDigest: 'digest-1',
          summary: { command: 'rm -rf build' },
          reason: 'shell needs approval',
          requestedAt: T0,
          expiresAt: T0 + expiresIn,
        });
      }

      it('creates pending approvals and finds the latest one for an intent', async () => {
        const approval = await pending();
        assert.equal(approval.state, 'pending');
        assert.deepEqual(
          await storage.approvals.findLatest(approval.agentId, 'digest-1'),
          approval,
        );
        assert.equal(await storage.approvals.findLatest(approval.agentId, 'digest-2'), undefined);
        await storage.approvals.decide(approval.id, {
          state: 'denied',
          decidedBy: 'a',
          now: T0 + 1,
        });
        const again = await storage.approvals.create({
          id: createId('apr'),
          agentId: approval.agentId,
          runId: null,
          seq: null,
          kind: 'tool.call',
          resource: 'shell',
          intentDigest: 'digest-1',
          summary: {},
          reason: 'asked again',
          requestedAt: T0 + 2,
          expiresAt: T0 + 60_000,
        });
        assert.equal(
          (await storage.approvals.findLatest(approval.agentId, 'digest-1'))?.id,
          again.id,
        );
      });

      it('decides once', async () => {
        const approval = await pending();
        const approved = await storage.approvals.decide(approval.id, {
          state: 'approved',
          decidedBy: 'operator:ana',
          note: 'fine',
          now: T0 + 10,
        });
        assert.equal(approved.state, 'approved');
        assert.equal(approved.decidedBy, 'operator:ana');
        assert.equal(approved.note, 'fine');
        await rejectsWithCode(
          storage.approvals.decide(approval.id, {
            state: 'denied',
            decidedBy: 'operator:bo',
            now: T0 + 11,
          }),
          'KEEL_CONFLICT',
        );
      });

      it('lets exactly one of two racing approvers decide', async () => {
        const approval = await pending();
        const outcomes = await Promise.allSettled([
          storage.approvals.decide(approval.id, { state: 'approved', decidedBy: 'a', now: T0 + 1 }),
          storage.approvals.decide(approval.id, { state: 'denied', decidedBy: 'b', now: T0 + 1 }),
        ]);
        assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 1);
      });

      it('expires an approval decided too late', async () => {
        const approval = await pending(1_000);
        await rejectsWithCode(
          storage.approvals.decide(approval.id, {
            state: 'approved',
            decidedBy: 'a',
            now: T0 + 1_000,
          }),
          'KEEL_APPROVAL_EXPIRED',
        );
        assert.equal((await storage.approvals.get(approval.id))?.state, 'expired');
      });

      it('expires due approvals in one sweep', async () => {
        const soon = await pending(1_000);
        const later = await pending(5_000);
        const expired = await storage.approvals.expireDue(T0 + 2_000);
        assert.deepEqual(
          expired.map((record) => record.id),
          [soon.id],
        );
        assert.equal(expired[0]?.state, 'expired');
        assert.equal((await storage.approvals.get(later.id))?.state, 'pending');
        assert.deepEqual(
          (await storage.approvals.list({ state: 'expired' })).map((record) => record.id),
          [soon.id],
        );
      });

      it('uses an approval once, and only an approved one', async () => {
        const approval = await pending();
        await rejectsWithCode(storage.approvals.consume(approval.id, T0 + 1), 'KEEL_CONFLICT');
        await storage.approvals.decide(approval.id, {
          state: 'approved',
          decidedBy: 'a',
          now: T0 + 1,
        });
        const used = await storage.approvals.consume(approval.id, T0 + 2);
        assert.equal(used.consumedAt, T0 + 2);
        await rejectsWithCode(storage.approvals.consume(approval.id, T0 + 3), 'KEEL_CONFLICT');
        await rejectsWithCode(storage.approvals.consume('apr_missing', T0), 'KEEL_NOT_FOUND');
      });

      it('refuses to use an approval after it expired', async () => {
        const approval = await pending(1_000);
        await storage.approvals.decide(approval.id, {
          state: 'approved',
          decidedBy: 'a',
          now: T0 + 1,
        });
        await rejectsWithCode(
          storage.approvals.consume(approval.id, T0 + 1_000),
          'KEEL_APPROVAL_EXPIRED',
        );
      });
    });

    describe('usage', () => {
      it('summarises by dimension and counts unpriced calls apart', async () => {
        const base = { agentId: 'a1', runId: 'r1', kind: 'llm.chat', provider: 'openai' };
        await storage.usage.record({
          ...base,
          id: createId('use'),
          ts: T0,
          model: 'm1',
          inputTokens: 10,
          outputTokens: 5,
          costMicros: 100,
        });
        await storage.usage.record({
          ...base,
          id: createId('use'),
          ts: T0 + 1,
          model: 'm1',
          inputTokens: 20,
          outputTokens: 5,
          costMicros: 200,
        });
        await storage.usage.record({
          ...base,
          id: createId('use'),
          ts: T0 + 2,
          model: 'm2',
          inputTokens: 1,
          outputTokens: 1,
          costMicros: null,
        });
        await storage.usage.record({
          ...base,
          agentId: 'a2',
          id: createId('use'),
          ts: T0 + 3,
          model: 'm1',
          inputTokens: 7,
          outputTokens: 7,
          costMicros: 7,
        });
        const byModel = await storage.usage.summarize({ agentId: 'a1' }, ['model']);
        assert.deepEqual(byModel, [
          {
            group: { model: 'm1' },
            calls: 2,
            inputTokens: 30,
            outputTokens: 10,
            costMicros: 300,
            unpricedCalls: 0,
          },
          {
            group: { model: 'm2' },
            calls: 1,
            inputTokens: 1,
            outputTokens: 1,
            costMicros: 0,
            unpricedCalls: 1,
          },
        ]);
        const total = await storage.usage.summarize({ since: T0 + 1 }, []);
        assert.deepEqual(total, [
          {
            group: {},
            calls: 3,
            inputTokens: 28,
            outputTokens: 13,
            costMicros: 207,
            unpricedCalls: 1,
          },
        ]);
        assert.deepEqual(await storage.usage.summarize({ agentId: 'nobody' }, []), []);
      });

      it('refuses negative token counts', async () => {
        await rejectsWithCode(
          storage.usage.record({
            id: createId('use'),
            ts: T0,
            agentId: 'a',
            runId: null,
            kind: 'llm.chat',
            model: 'm',
            provider: 'p',
            inputTokens: -1,
            outputTokens: 0,
            costMicros: 0,
          }),
          'KEEL_INVALID_ARGUMENT',
        );
      });
    });

    describe('budgets', () => {
      it('reserves within limits and settles the actual amounts', async () => {
        await storage.budgets.setLimits('agent:a', { tokens: 100 }, T0);
        const outcome = await storage.budgets.reserve({
          id: 'rsv1',
          scopes: ['agent:a'],
          amounts: amounts({ tokens: 60, calls: 1 }),
          now: T0,
        });
        assert.deepEqual(outcome, {
          granted: true,
          amounts: amounts({ tokens: 60, calls: 1 }),
          scopes: ['agent:a'],
          limitsCost: false,
        });
        assert.equal((await storage.budgets.get('agent:a'))?.reserved.tokens, 60);
        await storage.budgets.settle('rsv1', amounts({ tokens: 40, calls: 1 }), T0 + 1);
        const state = await storage.budgets.get('agent:a');
        assert.equal(state?.reserved.tokens, 0);
        assert.equal(state?.spent.tokens, 40);
        assert.equal(state?.spent.calls, 1);
        await rejectsWithCode(
          storage.budgets.settle('rsv1', amounts({}), T0 + 2),
          'KEEL_NOT_FOUND',
        );
      });

      it('refuses a reservation that does not fit without tripping, and trips when spending reaches the limit', async () => {
        await storage.budgets.setLimits('agent:a', { tokens: 100 }, T0);
        const refused = await storage.budgets.reserve({
          id: 'big',
          scopes: ['agent:a'],
          amounts: amounts({ tokens: 101 }),
          now: T0,
        });
        assert.ok(!refused.granted && refused.dimension === 'tokens' && refused.limit === 100);
        assert.equal((await storage.budgets.get('agent:a'))?.trippedAt, null);
        await storage.budgets.reserve({
          id: 'most',
          scopes: ['agent:a'],
          amounts: amounts({ tokens: 60 }),
          now: T0,
        });
        assert.deepEqual(await storage.budgets.settle('most', amounts({ tokens: 99 }), T0), []);
        await storage.budgets.reserve({
          id: 'last',
          scopes: ['agent:a'],
          amounts: amounts({ tokens: 1 }),
          now: T0,
        });
        assert.deepEqual(await storage.budgets.settle('last', amounts({ tokens: 1 }), T0), [
          'agent:a',
        ]);
        const small = await storage.budgets.reserve({
          id: 'small',
          scopes: ['agent:a'],
          amounts: amounts({ tokens: 0 }),
          now: T0,
        });
        assert.ok(!small.granted && small.dimension === null, 'a tripped scope refuses everything');
        assert.equal((await storage.budgets.get('agent:a'))?.trippedAt, T0);
        const reset = await storage.budgets.reset('agent:a', T0 + 1);
        assert.equal(reset.trippedAt, null);
        assert.deepEqual(
          await storage.budgets.reserve({
            id: 'again',
            scopes: ['agent:a'],
            amounts: amounts({ tokens: 1 }),
            now: T0 + 1,
          }),
          {
            granted: true,
            amounts: amounts({ tokens: 1 }),
            scopes: ['agent:a'],
            limitsCost: false,
          },
        );
      });

      it('leases up to upTo, never more than half the room, and settles and releases parts', async () => {
        await storage.budgets.setLimits('agent:a', { tokens: 1_000, calls: 5 }, T0);
        const lease = await storage.budgets.reserve({
          id: 'lease',
          scopes: ['agent:a', 'run:r'],
          amounts: amounts({ tokens: 100, calls: 1, wallMs: 10 }),
          upTo: amounts({ tokens: 800, calls: 8, wallMs: 80 }),
          now: T0,
        });
        // Half of the room where a limit is set (500 tokens, 2 of 5 calls); all of upTo where none is.
        assert.deepEqual(lease, {
          granted: true,
          amounts: amounts({ tokens: 500, calls: 2, wallMs: 80 }),
          scopes: ['agent:a', 'run:r'],
          limitsCost: false,
        });
        assert.deepEqual((await storage.budgets.get('agent:a'))?.reserved, {
          tokens: 500,
          costMicros: 0,
          calls: 2,
          wallMs: 80,
        });
        // One call's part settles with what it spent; the rest stays reserved.
        await storage.budgets.settle(
          'lease',
          amounts({ tokens: 90, calls: 1, wallMs: 3 }),
          T0 + 1,
          amounts({ tokens: 100, calls: 1, wallMs: 10 }),
        );
        let state = await storage.budgets.get('agent:a');
        assert.deepEqual([state?.spent.tokens, state?.reserved.tokens], [90, 400]);
        assert.deepEqual([state?.spent.calls, state?.reserved.calls], [1, 1]);
        const [open] = await storage.budgets.listOpenReservations();
        assert.deepEqual(open?.amounts, amounts({ tokens: 400, calls: 1, wallMs: 70 }));
        await rejectsWithCode(
          storage.budgets.release('lease', T0 + 2, amounts({ tokens: 401 })),
          'KEEL_INVALID_ARGUMENT',
        );
        await storage.budgets.release('lease', T0 + 2, amounts({ tokens: 100 }));
        assert.equal((await storage.budgets.get('agent:a'))?.reserved.tokens, 300);
        // Releasing without a part closes the reservation with whatever it still holds.
        await storage.budgets.release('lease', T0 + 3);
        state = await storage.budgets.get('agent:a');
        assert.deepEqual(state?.reserved, amounts({}));
        assert.deepEqual(await storage.budgets.listOpenReservations(), []);
        // When even the least does not fit, nothing is reserved.
        const refused = await storage.budgets.reserve({
          id: 'too-much',
          scopes: ['agent:a'],
          amounts: amounts({ tokens: 911 }),
          upTo: amounts({ tokens: 2_000 }),
          now: T0 + 4,
        });
        assert.ok(!refused.granted && refused.dimension === 'tokens');
        assert.deepEqual((await storage.budgets.get('agent:a'))?.reserved, amounts({}));
      });

      it('closes the breaker when limits are raised above spending', async () => {
        await storage.budgets.setLimits('run:r', { calls: 1 }, T0);
        await storage.budgets.reserve({
          id: 'one',
          scopes: ['run:r'],
          amounts: amounts({ calls: 1 }),
          now: T0,
        });
        await storage.budgets.settle('one', amounts({ calls: 1 }), T0);
        const refused = await storage.budgets.reserve({
          id: 'two',
          scopes: ['run:r'],
          amounts: amounts({ calls: 1 }),
          now: T0,
        });
        assert.equal(refused.granted, false);
        const raised = await storage.budgets.setLimits('run:r', { calls: 5 }, T0 + 1);
        assert.equal(raised.trippedAt, null);
        assert.equal(raised.spent.calls, 1);
      });

      it('reserves across scopes atomically', async () => {
        await storage.budgets.setLimits('agent:a', { tokens: 1_000 }, T0);
        await storage.budgets.setLimits('run:r', { tokens: 10 }, T0);
        const refused = await storage.budgets.reserve({
          id: 'x',
          scopes: ['agent:a', 'run:r'],
          amounts: amounts({ tokens: 50 }),
          now: T0,
        });
        assert.ok(!refused.granted && refused.scope === 'run:r');
        assert.equal((await storage.budgets.get('agent:a'))?.reserved.tokens, 0);
        assert.deepEqual(await storage.budgets.listOpenReservations(), []);
      });

      it('never grants past the limit under concurrent reservations', async () => {
        await storage.budgets.setLimits('agent:c', { tokens: 100 }, T0);
        const outcomes = await Promise.all(
          Array.from({ length: 30 }, (_, index) =>
            storage.budgets.reserve({
              id: `c${index}`,
              scopes: ['agent:c'],
              amounts: amounts({ tokens: 10 }),
              now: T0,
            }),
          ),
        );
        assert.equal(outcomes.filter((outcome) => outcome.granted).length, 10);
        assert.equal((await storage.budgets.get('agent:c'))?.reserved.tokens, 100);
      });

      it('tells whether a scope charged, or an ancestor of one, limits cost', async () => {
        await storage.budgets.setLimits('run:priced', { costMicros: 5_000 }, T0);
        await storage.budgets.inherit('run:priced-child', 'run:priced', T0);
        const reserve = (id: string, scopes: BudgetScope[]) =>
          storage.budgets.reserve({ id, scopes, amounts: amounts({ calls: 1 }), now: T0 });
        const limitsCost = async (id: string, scopes: BudgetScope[]) => {
          const outcome = await reserve(id, scopes);
          assert.equal(outcome.granted, true);
          return outcome.granted && outcome.limitsCost;
        };
        assert.equal(await limitsCost('free', ['agent:free', 'run:free']), false);
        assert.equal(await limitsCost('own', ['agent:free', 'run:priced']), true);
        assert.equal(await limitsCost('inherited', ['agent:free', 'run:priced-child']), true);
      });

      it('gives a child the remaining budget of its parent chain and charges the chain', async () => {
        await storage.budgets.setLimits('run:parent', { tokens: 100, calls: 10 }, T0);
        await storage.budgets.reserve({
          id: 'spent-by-parent',
          scopes: ['run:parent'],
          amounts: amounts({ tokens: 30, calls: 1 }),
          now: T0,
        });
        await storage.budgets.settle('spent-by-parent', amounts({ tokens: 30, calls: 1 }), T0);
        const child = await storage.budgets.inherit('run:child', 'run:parent', T0 + 1);
        assert.equal(child.parent, 'run:parent');
        assert.deepEqual(child.limits, { tokens: 70, calls: 9 });
        await storage.budgets.inherit('run:grandchild', 'run:child', T0 + 1);
        assert.deepEqual(
          await storage.budgets.reserve({
            id: 'deep',
            scopes: ['run:grandchild'],
            amounts: amounts({ tokens: 50, calls: 1 }),
            now: T0 + 2,
          }),
          {
            granted: true,
            amounts: amounts({ tokens: 50, calls: 1 }),
            scopes: ['run:grandchild', 'run:child', 'run:parent'],
            limitsCost: false,
          },
        );
        assert.equal((await storage.budgets.get('run:parent'))?.reserved.tokens, 50);
        await storage.budgets.settle('deep', amounts({ tokens: 45, calls: 1 }), T0 + 3);
        assert.equal((await storage.budgets.get('run:parent'))?.spent.tokens, 75);
        assert.equal((await storage.budgets.get('run:child'))?.spent.tokens, 45);
        // A sibling shares what the parent has left: 25, not its own snapshot of 70.
        await storage.budgets.inherit('run:sibling', 'run:parent', T0 + 4);
        const refused = await storage.budgets.reserve({
          id: 'sibling-too-big',
          scopes: ['run:sibling'],
          amounts: amounts({ tokens: 26 }),
          now: T0 + 5,
        });
        assert.equal(refused.granted, false);
        assert.equal(refused.granted === false && refused.limit, 25);
      });

      it('lists budgets in scope order, by prefix', async () => {
        await storage.budgets.setLimits('run:r1', { calls: 1 }, T0);
        await storage.budgets.setLimits('agent:b', { calls: 2 }, T0);
        await storage.budgets.setLimits('agent:a', { calls: 3 }, T0);
        assert.deepEqual(
          (await storage.budgets.list()).map((state) => state.scope),
          ['agent:a', 'agent:b', 'run:r1'],
        );
        assert.deepEqual(
          (await storage.budgets.list({ prefix: 'agent:', limit: 1 })).map((state) => state.scope),
          ['agent:a'],
        );
        assert.deepEqual(await storage.budgets.list({ prefix: 'agent:_' }), []);
      });

      it('refuses to re-parent a budget, to inherit from itself or from a descendant', async () => {
        await storage.budgets.inherit('run:b', 'run:a', T0);
        await rejectsWithCode(storage.budgets.inherit('run:b', 'run:c', T0), 'KEEL_CONFLICT');
        await rejectsWithCode(
          storage.budgets.inherit('run:a', 'run:a', T0),
          'KEEL_INVALID_ARGUMENT',
        );
        await rejectsWithCode(
          storage.budgets.inherit('run:a', 'run:b', T0),
          'KEEL_INVALID_ARGUMENT',
        );
      });

      it('lists open reservations and releases them without spending', async () => {
        await storage.budgets.reserve({
          id: 'open',
          scopes: ['agent:z', 'run:z'],
          amounts: amounts({ wallMs: 500 }),
          now: T0,
        });
        const open = await storage.budgets.listOpenReservations();
        assert.deepEqual(open, [
          {
            id: 'open',
            scopes: ['agent:z', 'run:z'],
            amounts: amounts({ wallMs: 500 }),
            createdAt: T0,
          },
        ]);
        await storage.budgets.release('open', T0 + 1);
        assert.deepEqual(await storage.budgets.listOpenReservations(), []);
        const state = await storage.budgets.get('agent:z');
        assert.equal(state?.reserved.wallMs, 0);
        assert.equal(state?.spent.wallMs, 0);
      });

      it('refuses malformed scopes and amounts', async () => {
        await rejectsWithCode(
          storage.budgets.setLimits('team:x' as 'agent:x', {}, T0),
          'KEEL_INVALID_ARGUMENT',
        );
        await rejectsWithCode(
          storage.budgets.reserve({
            id: 'n',
            scopes: ['agent:a'],
            amounts: amounts({ tokens: -5 }),
            now: T0,
          }),
          'KEEL_INVALID_ARGUMENT',
        );
        await rejectsWithCode(
          storage.budgets.reserve({ id: 'n', scopes: [], amounts: amounts({}), now: T0 }),
          'KEEL_INVALID_ARGUMENT',
        );
      });
    });

    describe('key values', () => {
      it('sets, overwrites, lists by prefix and deletes', async () => {
        await storage.keyValues.set('node.id', 'n1', T0);
        await storage.keyValues.set('node.id', 'n2', T0);
        await storage.keyValues.set('node.%weird_', { a: [1] }, T0);
        await storage.keyValues.set('nodes', true, T0);
        assert.equal(await storage.keyValues.get('node.id'), 'n2');
        assert.deepEqual(await storage.keyValues.list('node.'), [
          ['node.%weird_', { a: [1] }],
          ['node.id', 'n2'],
        ]);
        assert.equal(await storage.keyValues.delete('node.id'), true);
        assert.equal(await storage.keyValues.delete('node.id'), false);
        assert.equal(await storage.keyValues.get('node.id'), undefined);
      });
    });

    describe('capability grants', () => {
      it('lists only grants that are neither revoked nor expired', async () => {
        const agent = await newAgent();
        const base = { agentId: agent.id, issuedAt: T0, issuedBy: 'operator:ana' };
        const forever = await storage.grants.add({
          ...base,
          id: createId('grt'),
          grant: { kind: 'clock.now' },
          expiresAt: null,
        });
        const brief = await storage.grants.add({
          ...base,
          id: createId('grt'),
          grant: { kind: 'random' },
          expiresAt: T0 + 10,
        });
        const revoked = await storage.grants.add({
          ...base,
          id: createId('grt'),
          grant: { kind: 'log' },
          expiresAt: null,
        });
        const afterRevoke = await storage.grants.revoke(revoked.id, 'operator:bo', T0 + 1);
        assert.equal(afterRevoke.revokedBy, 'operator:bo');
        await rejectsWithCode(
          storage.grants.revoke(revoked.id, 'operator:bo', T0 + 2),
          'KEEL_CONFLICT',
        );
        assert.deepEqual(
          (await storage.grants.listActive(agent.id, T0 + 5)).map((grant) => grant.id).sort(),
          [forever.id, brief.id].sort(),
        );
        assert.deepEqual(
          (await storage.grants.listActive(agent.id, T0 + 10)).map((grant) => grant.id),
          [forever.id],
        );
        assert.equal((await storage.grants.listAll(agent.id)).length, 3);
        assert.deepEqual((await storage.grants.get(forever.id))?.grant, { kind: 'clock.now' });
      });

      it('replaces an agent’s active grants in one step, and a failed replacement changes nothing', async () => {
        const agent = await newAgent();
        const other = await newAgent();
        const base = { agentId: agent.id, issuedAt: T0, issuedBy: 'operator:ana' };
        const kept = await storage.grants.add({
          ...base,
          id: createId('grt'),
          grant: { kind: 'clock.now' },
          expiresAt: null,
        });
        const expired = await storage.grants.add({
          ...base,
          id: createId('grt'),
          grant: { kind: 'random' },
          expiresAt: T0 + 5,
        });
        const otherGrant = await storage.grants.add({
          ...base,
          agentId: other.id,
          id: createId('grt'),
          grant: { kind: 'log' },
          expiresAt: null,
        });
        const fresh = (kind: string) => ({
          ...base,
          id: createId('grt'),
          issuedAt: T0 + 10,
          grant: { kind },
          expiresAt: null,
        });
        const activeIds = async (agentId: string) =>
          (await storage.grants.listActive(agentId, T0 + 10)).map((grant) => grant.id);

        // A duplicate id, a grant for another agent and an unknown agent each change nothing.
        await rejectsWithCode(
          storage.grants.replace(
            agent.id,
            [fresh('log'), { ...fresh('log'), id: kept.id }],
            'deploy',
            T0 + 10,
          ),
          'KEEL_CONFLICT',
        );
        await rejectsWithCode(
          storage.grants.replace(
            agent.id,
            [{ ...fresh('log'), agentId: other.id }],
            'deploy',
            T0 + 10,
          ),
          'KEEL_INVALID_ARGUMENT',
        );
        await rejectsWithCode(
          storage.grants.replace('agt_missing', [], 'deploy', T0 + 10),
          'KEEL_NOT_FOUND',
        );
        assert.deepEqual(await activeIds(agent.id), [kept.id]);
        assert.equal((await storage.grants.listAll(agent.id)).length, 2);

        const first = fresh('log');
        const second = fresh('clock.now');
        const replaced = await storage.grants.replace(agent.id, [first, second], 'deploy', T0 + 10);
        assert.deepEqual(
          replaced.revoked.map((grant) => [grant.id, grant.revokedAt, grant.revokedBy]),
          [[kept.id, T0 + 10, 'deploy']],
          'only the active grant is revoked; the expired one keeps its history',
        );
        assert.deepEqual(
          replaced.added.map((grant) => grant.id),
          [first.id, second.id],
        );
        assert.deepEqual((await activeIds(agent.id)).sort(), [first.id, second.id].sort());
        assert.equal((await storage.grants.get(expired.id))?.revokedAt, null);
        assert.deepEqual(await activeIds(other.id), [otherGrant.id], 'other agents are untouched');

        const emptied = await storage.grants.replace(agent.id, [], 'remove', T0 + 11);
        assert.equal(emptied.revoked.length, 2);
        assert.deepEqual(await activeIds(agent.id), []);
      });

      it('deploys: metadata, trust level and grants change in one step, or none of them', async () => {
        const agent = await newAgent();
        const before = await storage.grants.add({
          id: createId('grt'),
          agentId: agent.id,
          grant: { kind: 'clock.now' },
          issuedAt: T0,
          issuedBy: 'operator:ana',
          expiresAt: null,
        });
        const grant = {
          id: createId('grt'),
          agentId: agent.id,
          grant: { kind: 'log' },
          issuedAt: T0 + 1,
          issuedBy: 'deploy',
          expiresAt: null,
        };
        // Metadata over the size limit: the grants stay as they were, and so does the record.
        await rejectsWithCode(
          storage.grants.replace(agent.id, [grant], 'deploy', T0 + 1, {
            metadata: { manifest: 'x'.repeat(2 * 1024 * 1024) },
            trustLevel: 'trusted',
            setting: { key: 'agents.version.deployed', value: { version: '9.0.0' } },
          }),
          'KEEL_PAYLOAD_TOO_LARGE',
        );
        assert.equal(await storage.keyValues.get('agents.version.deployed'), undefined);
        assert.deepEqual(
          (await storage.grants.listActive(agent.id, T0 + 1)).map((active) => active.id),
          [before.id],
        );
        assert.equal((await storage.agents.get(agent.id))?.trustLevel, 'standard');

        const deployed = await storage.grants.replace(agent.id, [grant], 'deploy', T0 + 2, {
          metadata: { version: '1.2.0' },
          trustLevel: 'untrusted',
          setting: { key: 'agents.version.deployed', value: { version: '1.2.0' } },
        });
        assert.deepEqual(await storage.keyValues.get('agents.version.deployed'), {
          version: '1.2.0',
        });
        assert.deepEqual(deployed.agent?.metadata, { version: '1.2.0' });
        assert.equal(deployed.agent?.trustLevel, 'untrusted');
        assert.equal(deployed.agent?.updatedAt, T0 + 2);
        assert.deepEqual(
          (await storage.grants.listActive(agent.id, T0 + 2)).map((active) => active.id),
          [grant.id],
        );
        assert.equal(
          (await storage.grants.replace(agent.id, [], 'remove', T0 + 3)).agent,
          undefined,
          'without a deployment the record is not touched',
        );
      });

      it('refuses grants for unknown agents', async () => {
        await rejectsWithCode(
          storage.grants.add({
            id: createId('grt'),
            agentId: 'agt_missing',
            grant: {},
            issuedAt: T0,
            issuedBy: 'x',
            expiresAt: null,
          }),
          'KEEL_NOT_FOUND',
        );
      });
    });

    describe('lifecycle', () => {
      it('reports ready while open', () => {
        assert.equal(storage.health().ready, true);
      });

      it('finishes in-flight work before closing, then refuses new work', async () => {
        const inFlight = Array.from({ length: 50 }, (_, index) =>
          storage.audit.append([draft({ data: { index } })]),
        );
        const closing = storage.close();
        const records = await Promise.all(inFlight);
        await closing;
        assert.equal(records.length, 50);
        await rejectsWithCode(storage.audit.count(), 'KEEL_SHUTTING_DOWN');
        assert.equal(storage.health().ready, false);
      });

      it('reports every shipped migration as applied', async () => {
        const status = await storage.migrationStatus();
        assert.ok(status.length >= 1);
        assert.ok(status.every((migration) => migration.appliedAt !== null));
      });
    });
  });
}
