import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { decodeServerSentEvents, type ServerSentEvent } from './server-sent-event-decoder.ts';

const encoder = new TextEncoder();

async function* streamOf(chunks: readonly (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
}

async function decodeAll(
  chunks: readonly (string | Uint8Array)[],
  maxEventBytes = 1_000_000,
): Promise<ServerSentEvent[]> {
  return collect(decodeServerSentEvents(streamOf(chunks), { maxEventBytes }));
}

async function collect<T>(values: AsyncIterable<T>): Promise<T[]> {
  const collected: T[] = [];
  for await (const value of values) collected.push(value);
  return collected;
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

function message(data: string, overrides: Partial<ServerSentEvent> = {}): ServerSentEvent {
  return { event: 'message', data, id: undefined, retryMs: undefined, ...overrides };
}

function isTooLarge(limit: number) {
  return (error: unknown): boolean => {
    assert.ok(isKeelError(error));
    assert.equal(error.code, 'KEEL_PROVIDER_RESPONSE_TOO_LARGE');
    assert.deepEqual(error.details, { limit });
    return true;
  };
}

describe('decodeServerSentEvents', () => {
  it('dispatches an event without an event field as a message', async () => {
    assert.deepEqual(await decodeAll(['data: hello\n\n']), [message('hello')]);
  });

  it('uses the event field as the event type', async () => {
    assert.deepEqual(await decodeAll(['event: delta\ndata: {}\n\n']), [
      message('{}', { event: 'delta' }),
    ]);
  });

  it('falls back to message for an empty event field', async () => {
    assert.deepEqual(await decodeAll(['event:\ndata: x\n\n']), [message('x')]);
  });

  it('resets the event type after each event', async () => {
    const events = await decodeAll(['event: a\ndata: 1\n\ndata: 2\n\n']);
    assert.deepEqual(
      events.map((event) => event.event),
      ['a', 'message'],
    );
  });

  it('joins multiple data lines with a newline', async () => {
    assert.deepEqual(await decodeAll(['data: one\ndata:\ndata: three\n\n']), [
      message('one\n\nthree'),
    ]);
  });

  it('removes exactly one space after the colon', async () => {
    assert.deepEqual(await decodeAll(['data:  two spaces\n\ndata:none\n\n']), [
      message(' two spaces'),
      message('none'),
    ]);
  });

  it('keeps colons after the first one in the value', async () => {
    assert.deepEqual(await decodeAll(['data: a:b: c\n\n']), [message('a:b: c')]);
  });

  it('reads a line without a colon as a field with an empty value', async () => {
    assert.deepEqual(await decodeAll(['data\n\ndata\ndata\n\n']), [message(''), message('\n')]);
  });

  it('ignores comment lines', async () => {
    assert.deepEqual(await decodeAll([': keep-alive\ndata: a\n:\n: another\n\n']), [message('a')]);
  });

  it('ignores unknown fields', async () => {
    assert.deepEqual(await decodeAll(['foo: bar\nDATA: no\ndata : no\ndata: yes\n\n']), [
      message('yes'),
    ]);
  });

  it('does not dispatch a block without a data field', async () => {
    assert.deepEqual(await decodeAll(['event: ping\n\n: comment\n\n\n\ndata: x\n\n']), [
      message('x'),
    ]);
  });

  it('accepts LF, CR and CRLF line ends, also mixed', async () => {
    assert.deepEqual(await decodeAll(['data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n']), [
      message('a'),
      message('b'),
      message('c'),
      message('d'),
    ]);
  });

  it('counts a CR ending one chunk and an LF starting the next as one line end', async () => {
    assert.deepEqual(await decodeAll(['data: a\r', '\ndata: b\r', '\n\r', '\n']), [
      message('a\nb'),
    ]);
  });

  it('counts a CR ending a chunk followed by an empty chunk and an LF as one line end', async () => {
    assert.deepEqual(await decodeAll(['data: a\r', '', '\ndata: b\n\n']), [message('a\nb')]);
  });

  it('strips a leading byte order mark, also when it is split between chunks', async () => {
    const bom = Uint8Array.of(0xef, 0xbb, 0xbf);
    assert.deepEqual(await decodeAll([bom.subarray(0, 1), bom.subarray(1), 'data: x\n\n']), [
      message('x'),
    ]);
  });

  it('strips only the first byte order mark', async () => {
    assert.deepEqual(await decodeAll(['\uFEFF\uFEFFdata: x\n\ndata: \uFEFFy\n\n']), [
      message('\uFEFFy'),
    ]);
  });

  it('decodes multi-byte characters split between chunks', async () => {
    const bytes = encoder.encode('data: é€😀\n\n');
    const chunks = Array.from(bytes, (byte) => Uint8Array.of(byte));
    assert.deepEqual(await decodeAll(chunks), [message('é€😀')]);
  });

  it('replaces invalid UTF-8 with U+FFFD instead of failing', async () => {
    const bytes = Uint8Array.of(...encoder.encode('data: '), 0xff, 0xe2, 0x82, 0x0a, 0x0a);
    assert.deepEqual(await decodeAll([bytes]), [message('\uFFFD\uFFFD')]);
  });

  it('keeps the last event id for later events, as EventSource.lastEventId does', async () => {
    const events = await decodeAll(['id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n']);
    assert.deepEqual(
      events.map((event) => event.id),
      ['1', '1', ''],
    );
  });

  it('takes an id from a block without data for the next event', async () => {
    assert.deepEqual(await decodeAll(['id: 7\n\ndata: a\n\n']), [message('a', { id: '7' })]);
  });

  it('ignores an id that contains NUL', async () => {
    assert.deepEqual(await decodeAll(['id: 1\n\nid: 2\0x\ndata: a\n\n']), [
      message('a', { id: '1' }),
    ]);
  });

  it('sets the retry time only from a value of ASCII digits', async () => {
    const events = await decodeAll([
      'retry: 1500\ndata: a\n\n',
      'retry: 15x\ndata: b\n\n',
      'retry: -1\nretry:\nretry: 1.5\nretry:  2\nretry: ٣\ndata: c\n\n',
      'retry:0\ndata: d\n\n',
    ]);
    assert.deepEqual(
      events.map((event) => event.retryMs),
      [1500, 1500, 1500, 0],
    );
  });

  it('does not dispatch an unterminated event at the end of the stream', async () => {
    assert.deepEqual(await decodeAll(['data: a\n\ndata: b\n']), [message('a')]);
    assert.deepEqual(await decodeAll(['data: a\n\ndata: b']), [message('a')]);
  });

  it('yields nothing for an empty stream', async () => {
    assert.deepEqual(await decodeAll([]), []);
    assert.deepEqual(await decodeAll(['', '']), []);
  });

  it('accepts an event of exactly the byte limit', async () => {
    // 'data: 12345' is 11 bytes.
    assert.deepEqual(await decodeAll(['data: 12345\n\n'], 11), [message('12345')]);
  });

  it('fails a single line longer than the limit', async () => {
    await assert.rejects(decodeAll(['data: 123456\n\n'], 11), isTooLarge(11));
  });

  it('fails an event whose lines add up to more than the limit', async () => {
    await assert.rejects(decodeAll(['data: 1\ndata: 2\ndata: 3\n\n'], 20), isTooLarge(20));
  });

  it('resets the event size at every blank line', async () => {
    const events = await decodeAll(['data: 1\n\ndata: 2\n\nevent: x\n\ndata: 3\n\n'], 8);
    assert.equal(events.length, 3);
  });

  it('does not count comment lines toward the event size', async () => {
    const comments = ': ping\n'.repeat(100);
    assert.deepEqual(await decodeAll([`data: 1\n${comments}\n`], 8), [message('1')]);
  });

  it('fails an endless line without buffering it', async () => {
    async function* endless(): AsyncGenerator<Uint8Array> {
      const chunk = encoder.encode('x'.repeat(1024));
      while (true) yield chunk;
    }
    const events = decodeServerSentEvents(endless(), { maxEventBytes: 65_536 });
    await assert.rejects(collect(events), isTooLarge(65_536));
  });

  it('fails an endless event of short lines without buffering it', async () => {
    async function* endless(): AsyncGenerator<Uint8Array> {
      const chunk = encoder.encode('data: x\n'.repeat(128));
      while (true) yield chunk;
    }
    const events = decodeServerSentEvents(endless(), { maxEventBytes: 65_536 });
    await assert.rejects(collect(events), isTooLarge(65_536));
  });

  it('cancels a fetch-style body stream when the consumer stops early', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode('data: tick\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const event of decodeServerSentEvents(body, { maxEventBytes: 1024 })) {
      assert.equal(event.data, 'tick');
      break;
    }
    assert.equal(cancelled, true);
  });

  it('passes an error of the underlying stream through', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield encoder.encode('data: a\n\n');
      throw new Error('socket closed');
    }
    const events = decodeServerSentEvents(failing(), { maxEventBytes: 1024 });
    await assert.rejects(collect(events), /socket closed/);
  });

  it('refuses a limit that is not a positive integer', async () => {
    for (const maxEventBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(
        collect(decodeServerSentEvents(streamOf(['data: a\n\n']), { maxEventBytes })),
        (error: unknown) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
      );
    }
  });
});

type Block =
  | {
      readonly kind: 'event' | 'no-data';
      readonly name: string | undefined;
      readonly id: string | undefined;
      readonly retry: number | undefined;
      readonly dataLines: readonly string[];
    }
  | { readonly kind: 'comment'; readonly text: string };

const LINE_ENDS = ['\n', '\r', '\r\n'] as const;

const unit = fc.oneof(
  fc.constantFrom(':', ' ', '\uFEFF', '\0', 'é', '€', '😀', 'data', '\u2028'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const lineValue = fc
  .string({ unit, maxLength: 12 })
  .filter((value) => !value.includes('\r') && !value.includes('\n'));

const blockArbitrary: fc.Arbitrary<Block> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('event' as const, 'no-data' as const),
    name: fc.option(lineValue, { nil: undefined }),
    id: fc.option(
      lineValue.filter((value) => !value.includes('\0')),
      { nil: undefined },
    ),
    retry: fc.option(fc.nat(), { nil: undefined }),
    dataLines: fc.array(lineValue, { minLength: 1, maxLength: 4 }),
  }),
  fc.record({ kind: fc.constant('comment' as const), text: lineValue }),
);

/** The lines that serialise the blocks, and the events a correct decoder yields for them. */
function serialise(
  blocks: readonly Block[],
  spaceAfterColon: readonly boolean[],
): { lines: string[]; expected: ServerSentEvent[] } {
  const lines: string[] = [];
  const expected: ServerSentEvent[] = [];
  let lastId: string | undefined;
  let retryMs: number | undefined;
  const field = (name: string, value: string): void => {
    // One space after the colon is optional unless the value itself starts with a space.
    const space = spaceAfterColon[lines.length % spaceAfterColon.length] || value.startsWith(' ');
    lines.push(`${name}:${space ? ' ' : ''}${value}`);
  };
  for (const block of blocks) {
    if (block.kind === 'comment') {
      lines.push(`:${block.text}`);
      continue;
    }
    if (block.name !== undefined) field('event', block.name);
    if (block.id !== undefined) field('id', block.id);
    if (block.retry !== undefined) field('retry', String(block.retry));
    if (block.kind === 'event') for (const data of block.dataLines) field('data', data);
    lines.push('');
    lastId = block.id ?? lastId;
    retryMs = block.retry ?? retryMs;
    if (block.kind === 'event') {
      expected.push({
        event: block.name === undefined || block.name === '' ? 'message' : block.name,
        data: block.dataLines.join('\n'),
        id: lastId,
        retryMs,
      });
    }
  }
  return { lines, expected };
}

function joinLines(lines: readonly string[], lineEnds: readonly (typeof LINE_ENDS)[number][]) {
  let text = '';
  let previousEnd = '';
  lines.forEach((line, index) => {
    let end = lineEnds[index % lineEnds.length] ?? '\n';
    // A blank line ended by LF right after a CR would read as one CRLF: the format cannot
    // express that choice, so the serialiser avoids it.
    if (previousEnd === '\r' && line === '' && end === '\n') end = '\r\n';
    text += line + end;
    previousEnd = end;
  });
  return text;
}

describe('decodeServerSentEvents properties', () => {
  it('yields exactly the serialised events for any chunking and line ends', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(blockArbitrary, { maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 1 }),
        fc.array(fc.constantFrom(...LINE_ENDS), { minLength: 1 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        async (blocks, spaceAfterColon, lineEnds, cuts, withBom) => {
          const { lines, expected } = serialise(blocks, spaceAfterColon);
          const text = `${withBom ? '\uFEFF' : ''}${joinLines(lines, lineEnds)}`;
          const bytes = encoder.encode(text);
          assert.deepEqual(await decodeAll(splitBytes(bytes, cuts)), expected);
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
        async (chunks, maxEventBytes) => {
          try {
            await decodeAll(chunks, maxEventBytes);
          } catch (error) {
            assert.ok(isKeelError(error), `unexpected ${String(error)}`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('decodes arbitrary bytes the same however they are chunked', async () => {
    const byteArbitrary = fc.oneof(
      fc.constantFrom(0x0a, 0x0d, 0x3a, 0x20, 0xef, 0xbb, 0xbf, 0xe2, 0x82, 0xac),
      fc.integer({ min: 0, max: 255 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(byteArbitrary, { maxLength: 96 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (byteList, cuts) => {
          const bytes = Uint8Array.from(byteList);
          const outcome = async (chunks: Uint8Array[]) =>
            decodeAll(chunks, 32).catch((error: unknown) =>
              isKeelError(error) ? error.code : Promise.reject(error),
            );
          assert.deepEqual(await outcome(splitBytes(bytes, cuts)), await outcome([bytes]));
        },
      ),
      { numRuns: 500 },
    );
  });
});
