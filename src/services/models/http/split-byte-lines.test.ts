import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { type SplitByteLinesOptions, splitByteLines } from './split-byte-lines.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function* streamOf(chunks: readonly string[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield encoder.encode(chunk);
}

async function linesOf(
  chunks: readonly string[],
  options: Partial<SplitByteLinesOptions> = {},
): Promise<string[]> {
  const lines: string[] = [];
  const all = splitByteLines(streamOf(chunks), {
    maxLineBytes: 1024,
    carriageReturnEndsLine: true,
    yieldUnterminatedLine: true,
    ...options,
  });
  for await (const line of all) lines.push(decoder.decode(line));
  return lines;
}

describe('splitByteLines', () => {
  it('ends lines at LF only when CR does not end a line', async () => {
    assert.deepEqual(await linesOf(['a\rb\r\nc\n'], { carriageReturnEndsLine: false }), [
      'a\rb\r',
      'c',
    ]);
  });

  it('ends lines at CR, LF and CRLF when CR ends a line', async () => {
    assert.deepEqual(await linesOf(['a\rb\r\nc\n\r\r\n']), ['a', 'b', 'c', '', '']);
  });

  it('joins a line spread over many chunks', async () => {
    assert.deepEqual(await linesOf(['ab', 'c', '', 'de\nf', 'g']), ['abcde', 'fg']);
  });

  it('yields or discards an unterminated last line as asked', async () => {
    assert.deepEqual(await linesOf(['a\nb']), ['a', 'b']);
    assert.deepEqual(await linesOf(['a\nb'], { yieldUnterminatedLine: false }), ['a']);
  });

  it('fails a partial line as soon as it passes the limit', async () => {
    await assert.rejects(linesOf(['123', '45', '6'], { maxLineBytes: 5 }), (error: unknown) => {
      assert.ok(isKeelError(error));
      assert.equal(error.code, 'KEEL_PROVIDER_RESPONSE_TOO_LARGE');
      assert.deepEqual(error.details, { limit: 5 });
      return true;
    });
  });

  it('splits any text the same as String.split on its line ends', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: fc.constantFrom('a', 'é', '\n', '\r') }), { maxLength: 8 }),
        async (chunks) => {
          const text = chunks.join('');
          const expected = text.split(/\r\n|\r|\n/);
          if (expected.at(-1) === '') expected.pop();
          assert.deepEqual(await linesOf(chunks), expected);
        },
      ),
    );
  });
});
