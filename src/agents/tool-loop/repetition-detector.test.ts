import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import { type ObservedTurn, RepetitionDetector, repetitionWarning } from './repetition-detector.ts';

function calls(...list: readonly [string, JsonObject][]): ObservedTurn {
  return { text: '', toolCalls: list.map(([name, args]) => ({ name, arguments: args })) };
}

function kinds(detector: RepetitionDetector, turns: readonly ObservedTurn[]): string[] {
  return turns.map((turn) => detector.observe(turn).kind);
}

describe('RepetitionDetector', () => {
  it('warns when the same call is made repeatLimit times in a row, then stops', () => {
    const search = calls(['search', { query: 'keel', page: 1 }]);
    assert.deepEqual(kinds(new RepetitionDetector(3), [search, search, search, search]), [
      'ok',
      'ok',
      'warn',
      'stuck',
    ]);
  });

  it('treats arguments with their keys in another order as the same call', () => {
    const detector = new RepetitionDetector(2);
    detector.observe(calls(['search', { query: 'keel', filter: { b: 1, a: 2 } }]));
    const verdict = detector.observe(calls(['search', { filter: { a: 2, b: 1 }, query: 'keel' }]));
    assert.equal(verdict.kind, 'warn');
    assert.deepEqual(verdict.kind === 'warn' ? verdict.repetition : undefined, {
      kind: 'tool-call',
      name: 'search',
      arguments: { filter: { a: 2, b: 1 }, query: 'keel' },
      count: 2,
    });
  });

  it('counts only consecutive calls: a different call in between resets the streak', () => {
    const read = calls(['read', { path: 'a' }]);
    const other = calls(['read', { path: 'b' }]);
    assert.deepEqual(kinds(new RepetitionDetector(3), [read, read, other, read, read, other]), [
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
    ]);
  });

  it('counts repeated calls within one turn', () => {
    const detector = new RepetitionDetector(3);
    const verdict = detector.observe(
      calls(['read', { path: 'a' }], ['read', { path: 'a' }], ['read', { path: 'a' }]),
    );
    assert.equal(verdict.kind, 'warn');
  });

  it('stops the second time the limit is reached, even for another call', () => {
    const a = calls(['read', { path: 'a' }]);
    const b = calls(['read', { path: 'b' }]);
    assert.deepEqual(kinds(new RepetitionDetector(2), [a, a, b, b]), ['ok', 'warn', 'ok', 'stuck']);
  });

  it('detects the same answer without tool calls repeated', () => {
    const answer: ObservedTurn = { text: 'I will look into it.', toolCalls: [] };
    const detector = new RepetitionDetector(2);
    assert.deepEqual(kinds(detector, [answer, answer, answer]), ['ok', 'warn', 'stuck']);
  });

  it('refuses a repeat limit below 2', () => {
    assert.throws(() => new RepetitionDetector(1), RangeError);
  });
});

describe('repetitionWarning', () => {
  it('names the repeated tool and asks for another approach', () => {
    const text = repetitionWarning({ kind: 'tool-call', name: 'search', arguments: {}, count: 3 });
    assert.match(text, /called search with the same arguments 3 times in a row/);
    assert.match(text, /Change your approach/);
  });
});
