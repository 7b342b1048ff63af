import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { describe, it } from 'node:test';
import {
  capText,
  TOOL_RESULT_BYTE_LIMIT,
  toolErrorContent,
  toolResultContent,
} from './tool-result-content.ts';

describe('toolResultContent', () => {
  it('passes a string as it is and serialises anything else with sorted keys', () => {
    assert.equal(toolResultContent('line one\nline two'), 'line one\nline two');
    assert.equal(
      toolResultContent({ b: [1, { d: 2, c: 3 }], a: null }),
      '{"a":null,"b":[1,{"c":3,"d":2}]}',
    );
    assert.equal(toolResultContent(42), '42');
  });

  it('caps a large result at 64 KiB with a note saying how large it was', () => {
    const content = toolResultContent('x'.repeat(200_000));
    assert.ok(Buffer.byteLength(content, 'utf8') <= TOOL_RESULT_BYTE_LIMIT);
    assert.match(
      content,
      /\[truncated: the result has 200000 bytes; only the first part is shown\]$/,
    );
    assert.ok(content.startsWith('x'.repeat(60_000)));
  });
});

describe('capText', () => {
  it('never cuts a multi-byte character in half', () => {
    for (let limit = 90; limit < 100; limit += 1) {
      const capped = capText('€'.repeat(100), limit);
      assert.ok(Buffer.byteLength(capped, 'utf8') <= limit);
      assert.ok(!capped.includes('\uFFFD'));
    }
  });
});

describe('toolErrorContent', () => {
  it('reports the code and the message as JSON', () => {
    assert.deepEqual(JSON.parse(toolErrorContent('KEEL_NOT_FOUND', 'no such file')), {
      error: { code: 'KEEL_NOT_FOUND', message: 'no such file' },
    });
  });
});
