/**
 * A small deterministic random source for the simulator (mulberry32), so a seeded sim run
 * repeats exactly. Not for anything security-related.
 *
 * @example
 * ```ts
 * const random = new SeededRandom(42);
 * random.gaussian(0, 0.01);
 * ```
 */
export class SeededRandom {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let value = this.#state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** Normally distributed (Box–Muller). */
  gaussian(mean: number, deviation: number): number {
    if (deviation === 0) return mean;
    const first = Math.max(this.next(), Number.MIN_VALUE);
    const second = this.next();
    return mean + deviation * Math.sqrt(-2 * Math.log(first)) * Math.cos(2 * Math.PI * second);
  }
}
