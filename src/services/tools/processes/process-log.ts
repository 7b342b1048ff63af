/** A page of a process's output. */
export interface ProcessLogPage {
  /** The bytes from `offset` as UTF-8 text (a character cut at either end decodes as U+FFFD). */
  readonly text: string;
  /** Where this page starts: the asked offset, or the oldest byte kept when that was dropped. */
  readonly offset: number;
  /** Where the next page starts. */
  readonly nextOffset: number;
  /** Bytes before `offset` that were asked for but are no longer kept. */
  readonly dropped: number;
  /** All the bytes written so far: `nextOffset === total` means nothing more to read now. */
  readonly total: number;
}

/**
 * The newest `capacity` bytes a process wrote (both streams, in arrival order, the way a
 * terminal shows them), addressed by absolute byte offsets that never go back, so a reader
 * can page through it with `offset`/`limit` while it grows and learns when it fell behind.
 *
 * @example
 * ```ts
 * const log = new ProcessLog(1024);
 * log.append(Buffer.from('listening\n'));
 * log.read(0, 100).text; // 'listening\n'
 * ```
 */
export class ProcessLog {
  readonly #capacity: number;
  readonly #buffer: Buffer;
  /** Bytes written in all; the buffer holds the last `min(total, capacity)` of them. */
  #total = 0;

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) {
      throw new RangeError('capacity must be a positive whole number');
    }
    this.#capacity = capacity;
    this.#buffer = Buffer.alloc(capacity);
  }

  get total(): number {
    return this.#total;
  }

  /** The offset of the oldest byte kept. */
  get start(): number {
    return Math.max(0, this.#total - this.#capacity);
  }

  append(chunk: Buffer): void {
    const kept = chunk.length > this.#capacity ? chunk.subarray(-this.#capacity) : chunk;
    const skipped = chunk.length - kept.length;
    let position = (this.#total + skipped) % this.#capacity;
    let copied = 0;
    while (copied < kept.length) {
      const length = Math.min(kept.length - copied, this.#capacity - position);
      kept.copy(this.#buffer, position, copied, copied + length);
      copied += length;
      position = (position + length) % this.#capacity;
    }
    this.#total += chunk.length;
  }

  /** Up to `limit` bytes from `offset` (clamped to what is kept). */
  read(offset: number, limit: number): ProcessLogPage {
    const from = Math.min(Math.max(offset, this.start), this.#total);
    const to = Math.min(from + Math.max(0, limit), this.#total);
    return {
      text: this.#slice(from, to).toString('utf8'),
      offset: from,
      nextOffset: to,
      dropped: Math.max(0, this.start - Math.max(0, offset)),
      total: this.#total,
    };
  }

  /** The last `length` bytes kept (at most), e.g. to look for a readiness text. */
  tail(length: number): Buffer {
    return this.#slice(Math.max(this.start, this.#total - length), this.#total);
  }

  #slice(from: number, to: number): Buffer {
    if (to <= from) return Buffer.alloc(0);
    const first = from % this.#capacity;
    const length = to - from;
    if (first + length <= this.#capacity) {
      return Buffer.from(this.#buffer.subarray(first, first + length));
    }
    return Buffer.concat([
      this.#buffer.subarray(first),
      this.#buffer.subarray(0, length - (this.#capacity - first)),
    ]);
  }
}
