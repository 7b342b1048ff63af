/**
 * A hash map from packed voxel keys (non-negative integers below 2^48) to numbers, stored in
 * two typed arrays with open addressing and linear probing. A JavaScript `Map` boxes every key
 * above 2^30 into a heap number on each call and hashes it generically; this map allocates
 * nothing per call, which is what the octree's per-beam lookups need.
 *
 * Deletion shifts the following run back (no tombstones), so lookups stay short after heavy
 * clearing. Entries move when others are deleted: do not delete while iterating.
 */

const EMPTY = -1;
const MINIMUM_CAPACITY = 16;
const TWO_TO_THE_32 = 4_294_967_296;

/**
 * An allocation-free hash map of voxel keys to numbers.
 *
 * @example
 * ```ts
 * const counts = new VoxelHashMap();
 * counts.set(packVoxelKey(1, 2, 3), 7);
 * counts.get(packVoxelKey(1, 2, 3), 0); // 7
 * ```
 */
export class VoxelHashMap {
  #keys: Float64Array;
  #values: Float64Array;
  #size = 0;
  #slotMask: number;

  constructor(initialCapacity = MINIMUM_CAPACITY) {
    let capacity = MINIMUM_CAPACITY;
    while (capacity < 2 * initialCapacity) capacity *= 2;
    this.#keys = new Float64Array(capacity).fill(EMPTY);
    this.#values = new Float64Array(capacity);
    this.#slotMask = capacity - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** The value stored for `key`, or `fallback` when there is none. */
  get(key: number, fallback: number): number {
    const slot = this.#find(key);
    return slot < 0 ? fallback : (this.#values[slot] ?? fallback);
  }

  has(key: number): boolean {
    return this.#find(key) >= 0;
  }

  /** Stores `value` for `key`; true when the key is new. */
  set(key: number, value: number): boolean {
    const keys = this.#keys;
    let slot = this.#home(key);
    for (;;) {
      const stored = keys[slot];
      if (stored === key) {
        this.#values[slot] = value;
        return false;
      }
      if (stored === EMPTY) break;
      slot = (slot + 1) & this.#slotMask;
    }
    keys[slot] = key;
    this.#values[slot] = value;
    this.#size += 1;
    if (2 * this.#size > keys.length) this.#resize(2 * keys.length);
    return true;
  }

  /** Removes `key`; true when it was there. */
  delete(key: number): boolean {
    let slot = this.#find(key);
    if (slot < 0) return false;
    const keys = this.#keys;
    const values = this.#values;
    const slotMask = this.#slotMask;
    // Backward-shift deletion: move each later entry of the run into the hole when its home
    // slot does not lie cyclically between the hole and where it sits.
    let next = (slot + 1) & slotMask;
    for (;;) {
      const moving = keys[next] ?? EMPTY;
      if (moving === EMPTY) break;
      const home = this.#home(moving);
      const stays = slot <= next ? slot < home && home <= next : slot < home || home <= next;
      if (!stays) {
        keys[slot] = moving;
        values[slot] = values[next] ?? 0;
        slot = next;
      }
      next = (next + 1) & slotMask;
    }
    keys[slot] = EMPTY;
    this.#size -= 1;
    return true;
  }

  /** Empties the map, keeping its capacity (a scratch set reused per scan allocates nothing). */
  clear(): void {
    this.#keys.fill(EMPTY);
    this.#size = 0;
  }

  /** Every entry as `[key, value]`, in slot order. */
  *entries(): IterableIterator<[number, number]> {
    const keys = this.#keys;
    const values = this.#values;
    for (let slot = 0; slot < keys.length; slot += 1) {
      const key = keys[slot] ?? EMPTY;
      if (key !== EMPTY) yield [key, values[slot] ?? 0];
    }
  }

  #home(key: number): number {
    // The key's high 16 bits and low 32 bits, mixed (multiplicative hashing, then a fold).
    const high = (key / TWO_TO_THE_32) | 0;
    const low = key >>> 0;
    let hash = Math.imul(low ^ Math.imul(high, 0x27d4eb2d), 0x9e3779b1);
    hash ^= hash >>> 15;
    hash = Math.imul(hash, 0x85ebca77);
    hash ^= hash >>> 13;
    return hash & this.#slotMask;
  }

  #find(key: number): number {
    const keys = this.#keys;
    let slot = this.#home(key);
    for (;;) {
      const stored = keys[slot];
      if (stored === key) return slot;
      if (stored === EMPTY) return -1;
      slot = (slot + 1) & this.#slotMask;
    }
  }

  #resize(capacity: number): void {
    const oldKeys = this.#keys;
    const oldValues = this.#values;
    this.#keys = new Float64Array(capacity).fill(EMPTY);
    this.#values = new Float64Array(capacity);
    this.#slotMask = capacity - 1;
    this.#size = 0;
    for (let slot = 0; slot < oldKeys.length; slot += 1) {
      const key = oldKeys[slot] ?? EMPTY;
      if (key !== EMPTY) this.set(key, oldValues[slot] ?? 0);
    }
  }
}
