import type { Writable } from 'node:stream';
import { KeelError } from '../../platform/errors/keel-error.ts';

const HEADER_BYTES = 4;

/**
 * Encodes one message as a frame: a 4-byte big-endian length, then the JSON text in UTF-8.
 * Throws `KEEL_PAYLOAD_TOO_LARGE` past `maxBytes`.
 *
 * @example
 * ```ts
 * socket.write(encodeFrame({ type: 'heartbeat' }, 1_048_576));
 * ```
 */
export function encodeFrame(message: unknown, maxBytes: number): Buffer {
  const text = JSON.stringify(message);
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) {
    throw new KeelError(
      'KEEL_PAYLOAD_TOO_LARGE',
      `a frame of ${size} bytes is larger than ${maxBytes}`,
      {
        details: { limit: maxBytes, size },
      },
    );
  }
  const frame = Buffer.allocUnsafe(HEADER_BYTES + size);
  frame.writeUInt32BE(size, 0);
  frame.write(text, HEADER_BYTES, 'utf8');
  return frame;
}

/**
 * Writes frames to a stream, holding those written in one callback and the promise reactions
 * that follow it, and passing them on together before anything else runs: many runs' frames
 * then cost one write, and the peer wakes once for them. Order is kept. (Held until the next
 * tick, not the next turn, so that a crash in a later callback cannot lose them.)
 *
 * @example
 * ```ts
 * const writer = new FrameWriter(socket);
 * writer.write(encodeFrame(message, 1_048_576));
 * ```
 */
export class FrameWriter {
  readonly #stream: Writable;
  #held = false;

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  write(frame: Buffer): void {
    if (!this.#held) {
      this.#held = true;
      this.#stream.cork();
      process.nextTick(this.#release);
    }
    this.#stream.write(frame);
  }

  readonly #release = (): void => {
    this.#held = false;
    this.#stream.uncork();
  };
}

/**
 * Splits a byte stream into frames and parses each as JSON. Keeps the chunks of a frame in a
 * list until it is complete, so a large frame arriving in many chunks costs linear time. A
 * frame over `maxBytes` or one that is not JSON is a protocol error: `push` throws
 * `KEEL_WORKER_PROTOCOL` and the decoder stays failed (the peer cannot be trusted to resync).
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder(1_048_576);
 * socket.on('data', (chunk) => { for (const message of decoder.push(chunk)) handle(message); });
 * ```
 */
export class FrameDecoder {
  readonly #maxBytes: number;
  readonly #chunks: Buffer[] = [];
  #buffered = 0;
  #failed: KeelError | undefined;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Buffer): unknown[] {
    if (this.#failed !== undefined) throw this.#failed;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const messages: unknown[] = [];
    while (this.#buffered >= HEADER_BYTES) {
      const length = this.#peekLength();
      if (length > this.#maxBytes) {
        this.#failed = new KeelError(
          'KEEL_WORKER_PROTOCOL',
          `a frame announced ${length} bytes, more than the ${this.#maxBytes} allowed`,
          { details: { limit: this.#maxBytes, size: length } },
        );
        throw this.#failed;
      }
      if (this.#buffered < HEADER_BYTES + length) break;
      const frame = this.#take(HEADER_BYTES + length).subarray(HEADER_BYTES);
      try {
        messages.push(JSON.parse(frame.toString('utf8')));
      } catch (error) {
        this.#failed = new KeelError('KEEL_WORKER_PROTOCOL', 'a frame is not valid JSON', {
          cause: error,
        });
        throw this.#failed;
      }
    }
    return messages;
  }

  /** Bytes received that do not yet form a whole frame. */
  get buffered(): number {
    return this.#buffered;
  }

  #peekLength(): number {
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= HEADER_BYTES) return first.readUInt32BE(0);
    const joined = Buffer.concat(this.#chunks);
    this.#chunks.length = 0;
    this.#chunks.push(joined);
    return joined.readUInt32BE(0);
  }

  #take(bytes: number): Buffer {
    const joined = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    if (joined === undefined) throw new KeelError('KEEL_INTERNAL', 'no bytes buffered');
    const taken = joined.subarray(0, bytes);
    const rest = joined.subarray(bytes);
    this.#chunks.length = 0;
    if (rest.length > 0) this.#chunks.push(rest);
    this.#buffered = rest.length;
    return taken;
  }
}
