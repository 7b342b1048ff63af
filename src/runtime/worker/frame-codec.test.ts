import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { encodeFrame, FrameDecoder, FrameWriter } from './frame-codec.ts';

const hasCode = (code: string) => (error: unknown) => isKeelError(error) && error.code === code;

describe('frame codec', () => {
  it('round-trips messages with multi-byte text, whole or a byte at a time', () => {
    const messages = [{ type: 'a', text: 'grüße 😀' }, { n: [1, 2, 3] }, 'plain'];
    const bytes = Buffer.concat(messages.map((message) => encodeFrame(message, 1024)));
    assert.equal(bytes.readUInt32BE(0), Buffer.byteLength(JSON.stringify(messages[0])));
    assert.deepEqual(new FrameDecoder(1024).push(bytes), messages);
    const decoder = new FrameDecoder(1024);
    const received: unknown[] = [];
    for (const byte of bytes) received.push(...decoder.push(Buffer.from([byte])));
    assert.deepEqual(received, messages);
    assert.equal(decoder.buffered, 0);
  });

  it('refuses a frame over the limit on either side, counting bytes rather than characters', () => {
    assert.throws(
      () => encodeFrame({ text: 'é'.repeat(20) }, 30),
      hasCode('KEEL_PAYLOAD_TOO_LARGE'),
    );
    const decoder = new FrameDecoder(8);
    assert.throws(
      () => decoder.push(encodeFrame({ a: 'long' }, 64)),
      hasCode('KEEL_WORKER_PROTOCOL'),
    );
    assert.throws(
      () => decoder.push(encodeFrame(1, 64)),
      hasCode('KEEL_WORKER_PROTOCOL'),
      'stays failed',
    );
  });

  it('refuses a frame that is not JSON', () => {
    const body = Buffer.from('{nope');
    const frame = Buffer.alloc(4 + body.length);
    frame.writeUInt32BE(body.length, 0);
    body.copy(frame, 4);
    assert.throws(() => new FrameDecoder(64).push(frame), hasCode('KEEL_WORKER_PROTOCOL'));
  });

  it('writes the frames of one callback and its promise reactions together, in order, before the next callback', async () => {
    const writes: Buffer[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        writes.push(chunk);
        done();
      },
      writev(chunks, done) {
        writes.push(Buffer.concat(chunks.map((entry) => entry.chunk as Buffer)));
        done();
      },
    });
    const writer = new FrameWriter(stream);
    // A callback queued before the writes still runs after they went out.
    const seenByNextCallback = new Promise<number>((resolve) =>
      setImmediate(() => resolve(writes.length)),
    );
    for (let index = 0; index < 3; index += 1) writer.write(encodeFrame({ index }, 64));
    await Promise.resolve();
    for (let index = 3; index < 5; index += 1) writer.write(encodeFrame({ index }, 64));
    assert.equal(writes.length, 0, 'held while promise reactions run');
    assert.equal(await seenByNextCallback, 1, 'out before the next callback');
    writer.write(encodeFrame({ index: 5 }, 64));
    await nextTurn();
    assert.equal(writes.length, 2);
    const decoded = new FrameDecoder(64).push(Buffer.concat(writes));
    assert.deepEqual(
      decoded,
      Array.from({ length: 6 }, (_, index) => ({ index })),
    );
  });
});
