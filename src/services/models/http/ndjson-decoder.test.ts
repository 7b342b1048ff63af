import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { decodeNdjson } from './ndjson-decoder.ts';

const encoder = new TextEncoder();

async function* streamOf(chunks: readonly (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
}

async function decodeAll(
  chunks: readonly (string | Uint8Array)[],
  maxLineBytes = 1_000_000,
): Promise<unknown[]> {
  const values: unknown[] = [];
  for await (const value of decodeNdjson(streamOf(chunks), { maxLineBytes })) values.push(value);
  return values;
}

/** Splits bytes at the given cut points (taken modulo the length), at the byte level. */
function splitBytes(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

function isProtocolError(line: number, excerpt: string) {
  return (error: unknown): boolean => {
    assert.ok(isKeelError(error));
    assert.equal(error.code, 'KEEL_PROVIDER_PROTOCOL');
    assert.deepEqual(error.details, { line, excerpt });
    return true;
  };
}

describe('decodeNdjson', () => {
  it('yields one value per line', async () => {
    assert.deepEqual(await decodeAll(['{"a":1}\n[2]\n"three"\nnull\n']), [
      { a: 1 },
      [2],
      'three',
      null,
    ]);
  });

  it('skips blank and whitespace-only lines', async () => {
    assert.deepEqual(await decodeAll(['\n{"a":1}\n\n  \t\n\r\n{"b":2}\n\n']), [{ a: 1 }, { b: 2 }]);
  });

  it('tolerates CRLF line ends', async () => {
    assert.deepEqual(await decodeAll(['{"a":1}\r\n{"b":2}\r', '\n']), [{ a: 1 }, { b: 2 }]);
  });

  it('parses a final line without a newline', async () => {
    assert.deepEqual(await decodeAll(['{"done":false}\n{"done":', 'true}']), [
      { done: false },
      { done: true },
    ]);
  });

  it('decodes multi-byte characters split between chunks', async () => {
    const bytes = encoder.encode('{"text":"é€😀"}\n');
    const chunks = Array.from(bytes, (byte) => Uint8Array.of(byte));
    assert.deepEqual(await decodeAll(chunks), [{ text: 'é€😀' }]);
  });

  it('drops a leading byte order mark', async () => {
    assert.deepEqual(await decodeAll(['\uFEFF{"a":1}\n']), [{ a: 1 }]);
  });

  it('reports a line that is not JSON with its 1-based number, counting blank lines', async () => {
    await assert.rejects(
      decodeAll(['{"a":1}\n\n', 'not json\r\n{"b":2}\n']),
      isProtocolError(3, 'not json'),
    );
  });

  it('reports an unterminated final line that is not JSON', async () => {
    await assert.rejects(decodeAll(['{"a":1}\n{"b":']), isProtocolError(2, '{"b":'));
  });

  it('cuts the excerpt to the first 120 characters', async () => {
    const line = `{${'😀'.repeat(200)}`;
    await assert.rejects(decodeAll([`${line}\n`]), isProtocolError(1, `{${'😀'.repeat(119)}`));
  });

  it('reports a line that is not UTF-8 as a protocol error', async () => {
    const bytes = Uint8Array.of(0x22, 0xff, 0x22, 0x0a);
    await assert.rejects(decodeAll([bytes]), isProtocolError(1, '"\uFFFD"'));
  });

  it('accepts a line of exactly the byte limit', async () => {
    assert.deepEqual(await decodeAll(['"12345"\n'], 7), ['12345']);
  });

  it('fails a line longer than the limit', async () => {
    await assert.rejects(decodeAll(['"123456"\n'], 7), (error: unknown) => {
      assert.ok(isKeelError(error));
      assert.equal(error.code, 'KEEL_PROVIDER_RESPONSE_TOO_LARGE');
      assert.deepEqual(error.details, { limit: 7 });
      return true;
    });
  });

  it('fails an endless line without buffering it', async () => {
    async function* endless(): AsyncGenerator<Uint8Array> {
      const chunk = encoder.encode(' '.repeat(1024));
      while (true) yield chunk;
    }
    const values = decodeNdjson(endless(), { maxLineBytes: 65_536 });
    await assert.rejects(
      (async () => {
        for await (const value of values) assert.fail(`unexpected ${String(value)}`);
      })(),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_PROVIDER_RESPONSE_TOO_LARGE',
    );
  });

  it('cancels a fetch-style body stream when the consumer stops early', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode('{"done":false}\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const value of decodeNdjson(body, { maxLineBytes: 1024 })) {
      assert.deepEqual(value, { done: false });
      break;
    }
    assert.equal(cancelled, true);
  });
});

describe('decodeNdjson properties', () => {
  it('yields exactly the serialised values for any chunking, line ends and blank lines', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            value: fc.jsonValue(),
            blankLinesBefore: fc.nat({ max: 2 }),
            lineEnd: fc.constantFrom('\n', '\r\n'),
          }),
          { maxLength: 8 },
        ),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (entries, finalNewline, cuts) => {
          let text = '';
          entries.forEach((entry, index) => {
            text += entry.lineEnd.repeat(entry.blankLinesBefore) + JSON.stringify(entry.value);
            if (finalNewline || index < entries.length - 1) text += entry.lineEnd;
          });
          // JSON turns -0 into 0, so the expectation goes through JSON too.
          const expected = entries.map((entry) => JSON.parse(JSON.stringify(entry.value)));
          assert.deepEqual(await decodeAll(splitBytes(encoder.encode(text), cuts)), expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('throws nothing but KeelErrors on arbitrary bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 64 }),
        async (chunks, maxLineBytes) => {
          try {
            await decodeAll(chunks, maxLineBytes);
          } catch (error) {
            assert.ok(isKeelError(error), `unexpected ${String(error)}`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
