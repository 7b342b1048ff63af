import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ChatMessage } from '../../runtime/worker/agent-program.ts';
import { approximateTokens, omissionNote, trimMessages } from './context-trimmer.ts';

const system: ChatMessage = { role: 'system', content: 'You are a test agent.' };
const task: ChatMessage = { role: 'user', content: 'Summarise the repository.' };

function user(content: string): ChatMessage {
  return { role: 'user', content };
}

function callTurn(id: string, resultSizes: readonly number[]): ChatMessage[] {
  const calls = resultSizes.map((_, index) => ({
    id: `${id}-${index}`,
    name: 'read',
    arguments: { path: `${id}-${index}` },
  }));
  return [
    { role: 'assistant', content: '', toolCalls: calls },
    ...resultSizes.map(
      (size, index): ChatMessage => ({
        role: 'tool',
        toolCallId: `${id}-${index}`,
        content: 'r'.repeat(size),
      }),
    ),
  ];
}

function sum(messages: readonly ChatMessage[]): number {
  return messages.reduce((total, message) => total + approximateTokens(message), 0);
}

function isNote(message: ChatMessage): boolean {
  return message.role === 'user' && /^\[\d+ earlier messages? omitted/.test(message.content);
}

describe('approximateTokens', () => {
  it('is a quarter of the UTF-8 bytes, rounded up, plus 4', () => {
    assert.equal(approximateTokens(user('')), 4);
    assert.equal(approximateTokens(user('abcd')), 5);
    assert.equal(approximateTokens(user('abcde')), 6);
    // '€' is three bytes: six of them are 18 bytes, 5 tokens.
    assert.equal(approximateTokens(user('€'.repeat(6))), 9);
  });

  it('counts the tool calls of an assistant message', () => {
    const [withCalls] = callTurn('a', [1]);
    assert.ok(withCalls !== undefined);
    assert.ok(approximateTokens(withCalls) > approximateTokens({ role: 'assistant', content: '' }));
  });
});

describe('trimMessages', () => {
  it('returns every message when they fit', () => {
    const messages = [system, task, ...callTurn('a', [10]), { role: 'assistant', content: 'ok' }];
    const trimmed = trimMessages(messages as ChatMessage[], 10_000);
    assert.deepEqual(trimmed, messages);
    assert.notEqual(trimmed, messages);
  });

  it('drops the oldest messages first and says how many went, right after the task', () => {
    const messages: ChatMessage[] = [system, task];
    for (let index = 0; index < 10; index += 1) messages.push(user(`m${index} ${'x'.repeat(40)}`));
    const budget = sum([system, task, omissionNote(10)]) + 3 * approximateTokens(messages[2]!);
    const trimmed = trimMessages(messages, budget);
    assert.deepEqual(trimmed, [system, task, omissionNote(7), ...messages.slice(9)]);
  });

  it('drops an assistant message with tool calls together with its tool results', () => {
    const older = callTurn('a', [400, 400]);
    const newer = callTurn('b', [40]);
    const messages: ChatMessage[] = [system, task, ...older, ...newer];
    const budget = sum([system, task, omissionNote(5), ...newer]) + 50;
    const trimmed = trimMessages(messages, budget);
    assert.deepEqual(trimmed, [system, task, omissionNote(3), ...newer]);
  });

  it('keeps the system message and the task even when nothing else fits', () => {
    const messages: ChatMessage[] = [system, task, user('y'.repeat(4_000))];
    const trimmed = trimMessages(messages, sum([system, task, omissionNote(1)]));
    assert.deepEqual(trimmed, [system, task, omissionNote(1)]);
  });

  it('leaves the note out when only the system message and the task fit', () => {
    const messages: ChatMessage[] = [system, task, user('y'.repeat(4_000))];
    assert.deepEqual(trimMessages(messages, sum([system, task])), [system, task]);
  });

  it('keeps system messages wherever they are', () => {
    const late: ChatMessage = { role: 'system', content: 'Be brief.' };
    const messages: ChatMessage[] = [system, task, user('z'.repeat(4_000)), late, user('last')];
    const trimmed = trimMessages(
      messages,
      sum([system, task, omissionNote(2), late, user('last')]),
    );
    assert.deepEqual(trimmed, [system, task, omissionNote(1), late, user('last')]);
  });

  it('returns no more than maxMessages messages, note included', () => {
    const messages: ChatMessage[] = [system, task];
    for (let index = 0; index < 10; index += 1) messages.push(...callTurn(`t${index}`, [1]));
    const trimmed = trimMessages(messages, 1_000_000, approximateTokens, 7);
    assert.deepEqual(trimmed, [system, task, omissionNote(16), ...messages.slice(-4)]);
  });

  it('counts each message at most once, so 100,000 messages trim in linear time', () => {
    const messages: ChatMessage[] = [system, task];
    for (let index = 0; index < 50_000; index += 1) messages.push(...callTurn(`t${index}`, [20]));
    messages.push(user('now'));
    let counted = 0;
    const counter = (message: ChatMessage): number => {
      counted += 1;
      return approximateTokens(message);
    };
    const trimmed = trimMessages(messages, 50_000, counter);
    assert.ok(messages.length >= 100_000);
    assert.ok(trimmed.length < messages.length);
    // Every message at most once, plus the omission note once.
    assert.ok(counted <= messages.length + 1, `${counted} counts for ${messages.length} messages`);
    assert.ok(sum(trimmed) <= 50_000);
  });

  it('fits the budget whenever the pinned messages do, keeps pairs intact and order', () => {
    const unitArbitrary = fc.oneof(
      fc.record({ kind: fc.constant('user' as const), size: fc.nat(600) }),
      fc.record({ kind: fc.constant('assistant' as const), size: fc.nat(600) }),
      fc.record({
        kind: fc.constant('calls' as const),
        sizes: fc.array(fc.nat(600), { minLength: 1, maxLength: 4 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(unitArbitrary, { maxLength: 40 }),
        fc.nat(4_000),
        fc.string({ maxLength: 300 }),
        fc.option(fc.integer({ min: 2, max: 60 }), { nil: undefined }),
        (units, budget, taskText, maxMessages) => {
          const taskMessage = user(taskText);
          const messages: ChatMessage[] = [system, taskMessage];
          units.forEach((unit, index) => {
            if (unit.kind === 'calls') messages.push(...callTurn(`u${index}`, unit.sizes));
            else messages.push({ role: unit.kind, content: 'w'.repeat(unit.size) });
          });
          const limit = maxMessages ?? Number.POSITIVE_INFINITY;
          const trimmed = trimMessages(messages, budget, approximateTokens, limit);

          assert.equal(trimmed[0], system);
          assert.equal(trimmed[1], taskMessage);
          if (sum(messages) <= budget && messages.length <= limit) {
            assert.deepEqual(trimmed, messages);
            return;
          }
          if (sum([system, taskMessage]) <= budget) assert.ok(sum(trimmed) <= budget);
          assert.ok(trimmed.length <= limit);

          const notes = trimmed.filter(isNote);
          assert.ok(notes.length <= 1);
          const kept = trimmed.filter((message) => !isNote(message));
          // The kept messages are the pinned two and a suffix of the rest, in order.
          const suffix = kept.slice(2);
          assert.deepEqual(suffix, messages.slice(messages.length - suffix.length));
          if (notes.length === 1) {
            assert.equal(trimmed[2], notes[0]);
            assert.deepEqual(notes[0], omissionNote(messages.length - kept.length));
          }
          // No tool result without its call, no call without its results.
          // The kept suffix runs to the end, so a kept call keeps all its results; and it never
          // starts with a result whose call was left out.
          assert.notEqual(suffix[0]?.role, 'tool');
        },
      ),
      { numRuns: 300 },
    );
  });
});
