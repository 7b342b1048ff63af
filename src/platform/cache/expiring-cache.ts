/**
 * A small map whose entries expire after a fixed time, for values that may be a little stale
 * (identities, grants) and that the owner drops explicitly when it changes them. It holds at
 * most `maxEntries`; when full it starts over rather than grow.
 *
 * @example
 * ```ts
 * const cache = new ExpiringCache<string, AgentRecord | undefined>(1_000, () => performance.now());
 * const agent = await cache.get(id, () => store.get(id));
 * cache.delete(id); // after the kernel changed the agent
 * ```
 */
export class ExpiringCache<Key, Value> {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #maxEntries: number;
  readonly #entries = new Map<Key, { readonly value: Value; readonly until: number }>();
  /** Bumped by every `delete`: a load that overlapped one must not cache what it read. */
  #generation = 0;

  constructor(ttlMs: number, now: () => number, maxEntries = 10_000) {
    this.#ttlMs = ttlMs;
    this.#now = now;
    this.#maxEntries = maxEntries;
  }

  /** The cached value, or the loaded one (then cached). */
  async get(key: Key, load: () => Promise<Value>): Promise<Value> {
    const now = this.#now();
    const hit = this.#entries.get(key);
    if (hit !== undefined && hit.until > now) return hit.value;
    const generation = this.#generation;
    const value = await load();
    // The owner changed something while this load was reading: the value may be the old one,
    // so it is returned but not kept.
    if (generation !== this.#generation) return value;
    if (this.#entries.size >= this.#maxEntries) this.#entries.clear();
    this.#entries.set(key, { value, until: now + this.#ttlMs });
    return value;
  }

  /** Keeps a value the owner has just read or written itself, fresher than any load. */
  set(key: Key, value: Value): void {
    this.#generation += 1;
    if (this.#entries.size >= this.#maxEntries) this.#entries.clear();
    this.#entries.set(key, { value, until: this.#now() + this.#ttlMs });
  }

  delete(key: Key): void {
    this.#generation += 1;
    this.#entries.delete(key);
  }
}
