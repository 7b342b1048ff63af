import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRosbridgeFrame, parseRosbridgeJson } from './decode-rosbridge-frame.ts';

test('rewrites bare NaN and Infinity tokens but leaves the same words inside strings alone', () => {
  assert.deepEqual(
    parseRosbridgeJson('{"note":"NaN or \\"Infinity\\"","ranges":[NaN,Infinity,-Infinity,0.5]}'),
    {
      note: 'NaN or "Infinity"',
      ranges: [null, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5],
    },
  );
});

test('still refuses text that is not JSON after the rewrite', () => {
  assert.throws(() => parseRosbridgeJson('{"ranges":[NaN,'), SyntaxError);
});

test('reports an oversized frame before decoding it', () => {
  const frame = decodeRosbridgeFrame(Buffer.from('x'.repeat(2_000)), 1_024);
  assert.deepEqual(frame, { kind: 'oversized', bytes: 2_000 });
});

test('decodes publish and status operations from text split across buffers', () => {
  const text = JSON.stringify({ op: 'publish', topic: '/odom', msg: { a: 1 } });
  assert.deepEqual(
    decodeRosbridgeFrame([Buffer.from(text.slice(0, 10)), Buffer.from(text.slice(10))], 1_024),
    { kind: 'publish', topic: '/odom', message: { a: 1 } },
  );
  const status = Buffer.from(JSON.stringify({ op: 'status', level: 'warning', msg: 'slow' }));
  assert.deepEqual(decodeRosbridgeFrame(status, 1_024), {
    kind: 'status',
    level: 'warning',
    text: 'slow',
    id: undefined,
  });
});

test('classifies a frame without an op as invalid and an unknown op as ignored', () => {
  assert.equal(decodeRosbridgeFrame(Buffer.from('{"topic":"/x"}'), 1_024).kind, 'invalid');
  assert.equal(decodeRosbridgeFrame(Buffer.from('"publish"'), 1_024).kind, 'invalid');
  assert.deepEqual(decodeRosbridgeFrame(Buffer.from('{"op":"fragment"}'), 1_024), {
    kind: 'ignored',
    op: 'fragment',
  });
});
