import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AUDIT_GENESIS_HASH,
  AuditChainVerifier,
  type AuditDraft,
  AuditHasher,
  type AuditRecord,
  auditBody,
} from './audit-chain.ts';
import { canonicalJson } from './canonical-json.ts';

const draftArbitrary: fc.Arbitrary<AuditDraft> = fc.record({
  ts: fc.integer({ min: 0, max: 2 ** 50 }),
  kind: fc.string({ minLength: 1 }),
  actor: fc.string({ minLength: 1 }),
  agentId: fc.option(fc.string(), { nil: null }),
  runId: fc.option(fc.string(), { nil: null }),
  subject: fc.option(fc.string(), { nil: null }),
  outcome: fc.option(fc.string(), { nil: null }),
  code: fc.option(fc.string(), { nil: null }),
  data: fc.dictionary(fc.string(), fc.jsonValue()),
});

function chain(key: Uint8Array, drafts: readonly AuditDraft[]): AuditRecord[] {
  const hasher = new AuditHasher(key);
  let previous = AUDIT_GENESIS_HASH;
  return drafts.map((draft, index) => {
    const hash = hasher.hash(previous, index + 1, draft);
    const record = { ...draft, seq: index + 1, prevHash: previous, hash };
    previous = hash;
    return record;
  });
}

describe('AuditHasher', () => {
  it('computes exactly HMAC-SHA256, for short and long keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.string(), (key, message) => {
        assert.equal(
          new AuditHasher(key).hmac(message),
          createHmac('sha256', key).update(message).digest('hex'),
        );
      }),
    );
  });

  it('matches the RFC 4231 test case 2', () => {
    const hasher = new AuditHasher(Buffer.from('Jefe'));
    assert.equal(
      hasher.hmac('what do ya want for nothing?'),
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('hashes the canonical JSON of the entry fields', () => {
    fc.assert(
      fc.property(draftArbitrary, fc.integer({ min: 1, max: 2 ** 40 }), (draft, seq) => {
        const { ts, kind, actor, agentId, runId, subject, outcome, code, data } = draft;
        assert.equal(
          auditBody(seq, draft, canonicalJson(data)),
          canonicalJson({ seq, ts, kind, actor, agentId, runId, subject, outcome, code, data }),
        );
      }),
    );
  });
});

describe('AuditChainVerifier', () => {
  const key = randomBytes(32);
  const drafts = Array.from(
    { length: 5 },
    (_, index): AuditDraft => ({
      ts: 1_000 + index,
      kind: 'test.event',
      actor: 'system',
      agentId: null,
      runId: null,
      subject: null,
      outcome: 'ok',
      code: null,
      data: { index },
    }),
  );

  it('accepts an intact chain', () => {
    const verifier = new AuditChainVerifier(key);
    for (const record of chain(key, drafts)) assert.ok(verifier.accept(record));
    assert.equal(verifier.checked, 5);
    assert.equal(verifier.firstBreak, undefined);
  });

  it('names the first modified, missing or relinked entry', () => {
    const records = chain(key, drafts);
    const modified = records.map((record) =>
      record.seq === 3 ? { ...record, data: { index: 99 } } : record,
    );
    const first = new AuditChainVerifier(key);
    for (const record of modified) first.accept(record);
    assert.deepEqual(
      [first.firstBreak?.seq, first.firstBreak?.reason, first.checked],
      [3, 'hash-mismatch', 2],
    );

    const missing = new AuditChainVerifier(key);
    for (const record of records.filter((record) => record.seq !== 2)) missing.accept(record);
    assert.deepEqual([missing.firstBreak?.seq, missing.firstBreak?.reason], [3, 'sequence-gap']);

    // Entry 3 rehashed with the right key but linked past a removed entry 2.
    const relinked = new AuditChainVerifier(key);
    relinked.accept(records[0] as AuditRecord);
    relinked.accept({ ...(records[2] as AuditRecord), seq: 2 });
    assert.equal(relinked.firstBreak?.reason, 'previous-hash-mismatch');
  });

  it('refuses a chain written with another key', () => {
    const verifier = new AuditChainVerifier(randomBytes(32));
    assert.equal(verifier.accept(chain(key, drafts)[0] as AuditRecord), false);
    assert.equal(verifier.firstBreak?.reason, 'hash-mismatch');
  });
});
