/**
 * What the bridge remembers about a command id it has seen: the result it published, once
 * there is one, so that a redelivery can be answered without acting again.
 */
export interface RecentCommand {
  result: Buffer | undefined;
}

/**
 * A bounded memory of recently seen command ids. MQTT QoS 1 is at-least-once, so the same
 * command can arrive twice; the bridge looks the id up here before acting. The oldest id is
 * forgotten first once `capacity` is reached.
 *
 * @example
 * ```ts
 * const recent = new RecentCommandIds(1024);
 * if (recent.get('cmd-1') === undefined) recent.remember('cmd-1');
 * ```
 */
export class RecentCommandIds {
  readonly #capacity: number;
  readonly #commands = new Map<string, RecentCommand>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /** The remembered command with this id, or `undefined` when it is not (or no longer) known. */
  get(id: string): RecentCommand | undefined {
    return this.#commands.get(id);
  }

  /** Remembers a new id without a result yet; forgets the oldest id when full. */
  remember(id: string): RecentCommand {
    const entry: RecentCommand = { result: undefined };
    this.#commands.delete(id);
    this.#commands.set(id, entry);
    while (this.#commands.size > this.#capacity) {
      const oldest = this.#commands.keys().next();
      if (oldest.done === true) break;
      this.#commands.delete(oldest.value);
    }
    return entry;
  }

  get size(): number {
    return this.#commands.size;
  }
}
