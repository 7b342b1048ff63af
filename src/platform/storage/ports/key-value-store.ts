import type { JsonValue } from './json-value.ts';

/**
 * Small durable settings (the node's identity, the last configuration digest, …).
 *
 * @example
 * ```ts
 * await storage.keyValues.set('node.id', 'node_…', now);
 * ```
 */
export interface KeyValueStore {
  get(key: string): Promise<JsonValue | undefined>;
  set(key: string, value: JsonValue, now: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Entries whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<ReadonlyArray<readonly [string, JsonValue]>>;
}
