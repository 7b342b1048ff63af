import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { ChatRequest } from '../provider/model-provider.ts';
import {
  TokenEstimator as Estimator,
  loadTokenEstimator,
  type TokenEstimator,
} from './token-estimator.ts';

/** A counter that charges one token a character and remembers what it was asked. */
function characterCounter(): { count: (text: string) => number; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    count: (text) => {
      seen.push(text);
      return text.length;
    },
  };
}

describe('token estimator', () => {
  let exact: TokenEstimator;

  before(async () => {
    exact = await loadTokenEstimator({ margin: 1 });
  });

  it('counts more tokens for more text', () => {
    const short = exact.countText('The build failed.');
    const long = exact.countText(
      'The build failed because the test for the token estimator expected more tokens.',
    );
    assert.ok(short > 0);
    assert.ok(long > short);
    assert.equal(exact.countText(''), 0);
  });

  it('counts special-token markers as ordinary text instead of refusing them', () => {
    // As the special token it would be one token; as text it is several.
    assert.ok(exact.countText('<|endoftext|>') > 1);
    assert.ok(exact.countText('before <|endoftext|> after <|fim_prefix|>') > 4);
  });

  it('rounds the margin up', () => {
    const estimator = new Estimator(() => 3, { margin: 1.25 });
    assert.equal(estimator.countText('anything'), 4);
    const proportional = new Estimator(characterCounter().count, { margin: 1.1 });
    assert.equal(proportional.countText('x'.repeat(10)), 11);
    assert.equal(proportional.countText('x'.repeat(11)), 13);
  });

  it('estimates a request with the per-message overheads, tool calls and tool schemas', () => {
    const { count } = characterCounter();
    const estimator = new Estimator(count, { margin: 1 });
    const request: Pick<ChatRequest, 'messages' | 'tools'> = {
      messages: [
        { role: 'system', content: 'sys' },
        {
          role: 'assistant',
          content: '',
          toolCalls: [{ id: 'c1', name: 'ls', arguments: { path: '.' } }],
        },
      ],
      tools: [{ name: 'ls', parameters: { type: 'object' } }],
    };
    const argumentsText = JSON.stringify({ path: '.' });
    const schemaText = JSON.stringify({ type: 'object' });
    assert.equal(
      estimator.estimateInput(request),
      3 + (4 + 3) + (4 + 0) + (4 + 2 + argumentsText.length) + (4 + 2 + schemaText.length),
    );
    const margined = new Estimator(count, { margin: 1.25 });
    assert.equal(
      margined.estimateInput({ messages: [{ role: 'user', content: 'abcd' }] }),
      Math.ceil((3 + 4 + 4) * 1.25),
    );
    assert.equal(margined.estimateEmbedding(['ab', 'cde']), Math.ceil(5 * 1.25));
    // A conversation counted in parts, as it grew, estimates as the whole does.
    const [first, ...rest] = request.messages;
    const parts = margined.countMessages(first ? [first] : []) + margined.countMessages(rest);
    assert.equal(margined.estimateInput(request, parts), margined.estimateInput(request));
  });

  it('bounds text over maxTokenizedLength by its UTF-8 byte count without tokenizing it', () => {
    const counter = characterCounter();
    const estimator = new Estimator(counter.count, { margin: 1, maxTokenizedLength: 10 });
    const long = 'é'.repeat(11);
    assert.equal(estimator.countText(long), Buffer.byteLength(long));
    assert.equal(estimator.countText(long), 22);
    assert.deepEqual(counter.seen, []);
    assert.equal(estimator.countText('é'.repeat(10)), 10);
  });

  it('counts text with a long word in short pieces, and other text whole', () => {
    const counter = characterCounter();
    const estimator = new Estimator(counter.count, { margin: 1 });
    const prose = 'a few words '.repeat(1_000);
    assert.equal(estimator.countText(prose), prose.length);
    assert.deepEqual(counter.seen, [prose]);
    counter.seen.length = 0;
    // Base64, minified code, a run of one letter: BPE's time grows with a word's square.
    const word = `${'z'.repeat(100_000)} and 😀${'q'.repeat(300)}`;
    const counted = estimator.countText(word);
    assert.ok(counter.seen.length > 1);
    assert.ok(counter.seen.every((piece) => piece.length <= 256));
    assert.equal(counter.seen.join(''), word, 'every character is counted once');
    assert.ok(
      counter.seen.every((piece) => piece.isWellFormed()),
      'no pair is cut',
    );
    assert.equal(counted, word.length + counter.seen.length, 'one token more a piece');
  });

  it('counts a long word with the real tokenizer no lower than whole, and finishes on a huge one', async () => {
    const { countTokens } = await import('gpt-tokenizer/encoding/o200k_base');
    for (const text of [`${'ab12'.repeat(500)} end`, `start ${'Zq9/'.repeat(700)}=`]) {
      assert.ok(exact.countText(text) >= countTokens(text), text.slice(0, 20));
    }
    // 200,000 letters without a space: minutes counted whole on this machine.
    assert.ok(exact.countText('z'.repeat(200_000)) > 0);
  });

  it('bounds a long text with the real tokenizer by at least its token count', async () => {
    const bounded = await loadTokenEstimator({ margin: 1, maxTokenizedLength: 100 });
    const text = 'tokens '.repeat(50);
    assert.equal(bounded.countText(text), Buffer.byteLength(text));
    assert.ok(bounded.countText(text) >= exact.countText(text));
  });

  it('counts a text the same when it comes again, also after many others went through', async () => {
    const fresh = await loadTokenEstimator({ margin: 1 });
    const history = 'A long conversation message about the build. '.repeat(200);
    const first = fresh.countText(history);
    assert.equal(fresh.countText(history), first);
    // More distinct text than the memory holds: the first text's count is still right.
    for (let index = 0; index < 200; index += 1) {
      fresh.countText(`${index} ${'filler text for the memo '.repeat(1000)}`);
    }
    assert.equal(fresh.countText(history), first);
    assert.equal(first, exact.countText(history));
  });
});
