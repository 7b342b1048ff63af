/**
 * The body's output to a robot behind a bridge: the twist the control loop wants the base to
 * drive, in shared memory, written by the loop thread (the only writer) every tick and read
 * by the bridge's I/O thread at its own rate. A seqlock, like the control mailbox, whose
 * payload words also go through `Atomics` (doubles as their 64 bits).
 */

const SEQUENCE = 0;
const FLOATS_OFFSET = 8;
/** linear, angular, written-at (ms since the epoch) */
const FLOATS = 3;

/**
 * @example
 * ```ts
 * const outbound = OutboundTwist.create();
 * outbound.write(0.3, 0, now);                 // loop thread
 * outbound.read();                            // I/O thread: { linear, angular, writtenAt }
 * ```
 */
export class OutboundTwist {
  readonly buffer: SharedArrayBuffer;
  readonly #ints: Int32Array;
  readonly #words: BigInt64Array;
  readonly #scratchFloat = new Float64Array(1);
  readonly #scratchBits = new BigInt64Array(this.#scratchFloat.buffer);

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#ints = new Int32Array(buffer, 0, 2);
    this.#words = new BigInt64Array(buffer, FLOATS_OFFSET, FLOATS);
  }

  #store(index: number, value: number): void {
    this.#scratchFloat[0] = value;
    Atomics.store(this.#words, index, this.#scratchBits[0] ?? 0n);
  }

  #load(index: number): number {
    this.#scratchBits[0] = Atomics.load(this.#words, index);
    return this.#scratchFloat[0] ?? 0;
  }

  static create(): OutboundTwist {
    return new OutboundTwist(new SharedArrayBuffer(FLOATS_OFFSET + FLOATS * 8));
  }

  static attach(buffer: SharedArrayBuffer): OutboundTwist {
    return new OutboundTwist(buffer);
  }

  write(linear: number, angular: number, writtenAt: number): void {
    Atomics.add(this.#ints, SEQUENCE, 1);
    this.#store(0, linear);
    this.#store(1, angular);
    this.#store(2, writtenAt);
    Atomics.add(this.#ints, SEQUENCE, 1);
  }

  /** The newest consistent twist, or `undefined` before the first write. */
  read(): { linear: number; angular: number; writtenAt: number } | undefined {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const before = Atomics.load(this.#ints, SEQUENCE);
      if (before === 0) return undefined;
      if ((before & 1) === 1) continue;
      const linear = this.#load(0);
      const angular = this.#load(1);
      const writtenAt = this.#load(2);
      if (Atomics.load(this.#ints, SEQUENCE) === before) return { linear, angular, writtenAt };
    }
    return undefined;
  }
}
