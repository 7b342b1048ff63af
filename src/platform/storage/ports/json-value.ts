/** A value that survives a JSON round trip unchanged. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { readonly [key: string]: JsonValue };

/**
 * The most bytes of JSON text one stored value holds: a run's result or error, a journaled
 * syscall result, a task. Stores refuse a larger one with `KEEL_PAYLOAD_TOO_LARGE`.
 */
export const MAX_STORED_JSON_BYTES = 1024 * 1024;

/**
 * Whether the JSON text of `value` (a JSON value) takes at most `maxBytes` in UTF-8. Sums a
 * bound first (every character of every string escaped at its longest, six bytes), which
 * settles small values without serialising them; serialises only when that bound is over.
 *
 * @example
 * ```ts
 * if (!jsonFits(result, MAX_STORED_JSON_BYTES)) throw tooLarge();
 * ```
 */
export function jsonFits(value: unknown, maxBytes: number): boolean {
  if (boundedSize(value, maxBytes) <= maxBytes) return true;
  const text = JSON.stringify(value);
  return text === undefined || Buffer.byteLength(text) <= maxBytes;
}

/** At least the JSON text's size in bytes; stops counting once past `limit`. */
function boundedSize(value: unknown, limit: number): number {
  if (typeof value === 'string') return 2 + 6 * value.length;
  // A number's text is at most 24 characters, a date's (as JSON writes it) 26 with quotes.
  if (typeof value !== 'object' || value === null) return 24;
  if (value instanceof Date) return 32;
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) {
      size += 1 + boundedSize(item, limit);
      if (size > limit) return size;
    }
    return size;
  }
  for (const [key, member] of Object.entries(value)) {
    size += 4 + 6 * key.length + boundedSize(member, limit);
    if (size > limit) return size;
  }
  return size;
}
