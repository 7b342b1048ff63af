/**
 * A hash map from packed voxel keys (non-negative integers below 2^48) to numbers, stored in
 * one typed array (each key beside its value, so a probe touches one cache line) with open
 * addressing and linear probing, at most half full. A JavaScript `Map` boxes every key above
 * 2^30 into a heap number on each call and hashes it generically; this map allocates nothing
 * per call, which is what the octree's per-beam lookups need.
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
  /** Slot `s` holds its key at `2s` and its value at `2s + 1`: one cache line per probe. */
  #entries: Float64Array;
  #size = 0;
  #slotMask: number;

  constructor(initialCapacity = MINIMUM_CAPACITY) {
    let capacity = MINIMUM_CAPACITY;
    while (capacity < 2 * initialCapacity) capacity *= 2;
    this.#entries = VoxelHashMap.#emptyEntries(capacity);
    this.#slotMask = capacity - 1;
  }

  static #emptyEntries(capacity: number): Float64Array {
    const entries = new Float64Array(2 * capacity);
    for (let slot = 0; slot < capacity; slot += 1) entries[2 * slot] = EMPTY;
    return entries;
  }

  get size(): number {
    return this.#size;
  }

  /** The value stored for `key`, or `fallback` when there is none. */
  get(key: number, fallback: number): number {
    const slot = this.#find(key);
    return slot < 0 ? fallback : (this.#entries[2 * slot + 1] as number);
  }

  has(key: number): boolean {
    return this.#find(key) >= 0;
  }

  /** Stores `value` for `key`; true when the key is new. */
  set(key: number, value: number): boolean {
    const entries = this.#entries;
    let slot = this.#home(key);
    for (;;) {
      const stored = entries[2 * slot];
      if (stored === key) {
        entries[2 * slot + 1] = value;
        return false;
      }
      if (stored === EMPTY) break;
      slot = (slot + 1) & this.#slotMask;
    }
    entries[2 * slot] = key;
    entries[2 * slot + 1] = value;
    this.#size += 1;
    if (4 * this.#size > entries.length) this.#resize(entries.length);
    return true;
  }

  /** Removes `key`; true when it was there. */
  delete(key: number): boolean {
    let slot = this.#find(key);
    if (slot < 0) return false;
    const entries = this.#entries;
    const slotMask = this.#slotMask;
    // Backward-shift deletion: move each later entry of the run into the hole when its home
    // slot does not lie cyclically between the hole and where it sits.
    let next = (slot + 1) & slotMask;
    for (;;) {
      const moving = entries[2 * next] as number;
      if (moving === EMPTY) break;
      const home = this.#home(moving);
      const stays = slot <= next ? slot < home && home <= next : slot < home || home <= next;
      if (!stays) {
        entries[2 * slot] = moving;
        entries[2 * slot + 1] = entries[2 * next + 1] as number;
        slot = next;
      }
      next = (next + 1) & slotMask;
    }
    entries[2 * slot] = EMPTY;
    this.#size -= 1;
    return true;
  }

  /** Empties the map, keeping its capacity (a scratch set reused per scan allocates nothing). */
  clear(): void {
    const entries = this.#entries;
    for (let index = 0; index < entries.length; index += 2) entries[index] = EMPTY;
    this.#size = 0;
  }

  /** Every entry as `[key, value]`, in slot order. */
  *entries(): IterableIterator<[number, number]> {
    const entries = this.#entries;
    for (let index = 0; index < entries.length; index += 2) {
      const key = entries[index] as number;
      if (key !== EMPTY) yield [key, entries[index + 1] as number];
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
    const entries = this.#entries;
    let slot = this.#home(key);
    for (;;) {
      const stored = entries[2 * slot];
      if (stored === key) return slot;
      if (stored === EMPTY) return -1;
      slot = (slot + 1) & this.#slotMask;
    }
  }

  #resize(capacity: number): void {
    const old = this.#entries;
    this.#entries = VoxelHashMap.#emptyEntries(capacity);
    this.#slotMask = capacity - 1;
    this.#size = 0;
    for (let index = 0; index < old.length; index += 2) {
      const key = old[index] as number;
      if (key !== EMPTY) this.set(key, old[index + 1] as number);
    }
  }
}
