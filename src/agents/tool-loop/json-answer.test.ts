import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJsonAnswer } from './json-answer.ts';

const schema = {
  type: 'object',
  required: ['title', 'score'],
  properties: { title: { type: 'string' }, score: { type: ['integer', 'null'] } },
};

describe('parseJsonAnswer', () => {
  it('reads a bare JSON object', () => {
    assert.deepEqual(parseJsonAnswer(' {"title":"x","score":3} ', schema), {
      ok: true,
      data: { title: 'x', score: 3 },
    });
  });

  it('reads a JSON object in a Markdown code fence', () => {
    const answer = parseJsonAnswer('```json\n{"title":"x","score":null}\n```', schema);
    assert.deepEqual(answer, { ok: true, data: { title: 'x', score: null } });
  });

  it('says why an answer is not the object the schema asks for', () => {
    const problem = (text: string): string => {
      const answer = parseJsonAnswer(text, schema);
      assert.equal(answer.ok, false);
      return answer.ok ? '' : answer.problem;
    };
    assert.match(problem('The title is x.'), /not JSON/);
    assert.match(problem('[1, 2]'), /not a JSON object/);
    assert.match(problem('{"title":"x"}'), /lacks the required property score/);
    assert.match(problem('{"title":1,"score":1}'), /title is not of type string/);
    assert.match(problem('{"title":"x","score":1.5}'), /score is not of type integer or null/);
  });
});
