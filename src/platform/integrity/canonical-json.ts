/**
 * Serialises a JSON value deterministically: object keys sorted, no whitespace, `undefined`
 * members dropped. Two equal values always give the same string, so hashes over it are stable
 * across processes, engines and storage round trips.
 *
 * Throws on values JSON cannot represent faithfully (non-finite numbers, bigint, functions,
 * symbols, Maps, Sets, buffers, class instances, cycles) rather than silently changing them;
 * a Date becomes its ISO string.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return canonicalCopy(value).text;
}

/**
 * `canonicalJson(value)` together with a detached copy of the value as plain JSON (what
 * `JSON.parse` of the text gives), for callers that keep the value and must not share it.
 *
 * @example
 * ```ts
 * const { text, copy } = canonicalCopy({ b: 1, a: new Date(0) }); // copy: { a: '1970-01-01T00:00:00.000Z', b: 1 }
 * ```
 */
export function canonicalCopy(value: unknown): { readonly text: string; readonly copy: unknown } {
  // The engine's serialiser over a sorted copy is faster than assembling the text here. Each
  // member of `value` is read once, into the copy; when the engine would list integer-like
  // keys of the copy out of sorted order, the text is assembled from the copy instead.
  const order = { reordered: false };
  const copy = sortedCopy(value, 0, order);
  return { text: order.reordered ? serialise(copy) : JSON.stringify(copy), copy };
}

/**
 * A value that has no faithful canonical JSON form.
 *
 * @example
 * ```ts
 * if (error instanceof CanonicalJsonError) return notJson(error);
 * ```
 */
export class CanonicalJsonError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

/** Deeper than this is refused: real data is never this deep, and a cycle always is. */
const MAX_DEPTH = 256;

function isSorted(keys: readonly string[]): boolean {
  for (let index = 1; index < keys.length; index += 1) {
    if ((keys[index - 1] as string) > (keys[index] as string)) return false;
  }
  return true;
}

const startsWithDigit = (key: string): boolean => {
  const code = key.charCodeAt(0);
  return code >= 48 && code <= 57;
};

/**
 * A copy of `value` as plain JSON data (Dates as ISO text, -0 as 0, undefined members dropped),
 * its objects' keys inserted in sorted order, with the same refusals as `serialise`. Engines
 * list integer-like keys first whatever the insertion order: when that puts an object's keys
 * out of sorted order, `order.reordered` is set.
 */
function sortedCopy(value: unknown, depth: number, order: { reordered: boolean }): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError('canonicalJson: non-finite number');
      // JSON has one zero: -0 reads back as 0.
      return value === 0 ? 0 : value;
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`canonicalJson: cannot serialise a ${typeof value}`);
  }
  if (depth > MAX_DEPTH)
    throw new CanonicalJsonError('canonicalJson: value nested too deeply (or cyclic)');
  if (Array.isArray(value)) {
    const copy: unknown[] = new Array(value.length);
    for (let index = 0; index < value.length; index += 1) {
      const item: unknown = value[index];
      copy[index] = item === undefined ? null : sortedCopy(item, depth + 1, order);
    }
    return copy;
  }
  if (value instanceof Date) return value.toISOString();
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CanonicalJsonError(
      `canonicalJson: cannot serialise a ${(value as object).constructor?.name ?? 'non-plain object'}`,
    );
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (!isSorted(keys)) keys.sort();
  // A literal rather than a prototype-less object: engines build and serialise it far faster.
  const copy: Record<string, unknown> = {};
  let integerLike = false;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    if (startsWithDigit(key)) integerLike = true;
    const copied = sortedCopy(member, depth + 1, order);
    // Assigning `__proto__` would set the copy's prototype instead of adding the key.
    if (key === '__proto__') {
      Object.defineProperty(copy, key, {
        value: copied,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else copy[key] = copied;
  }
  if (integerLike && !isSorted(Object.keys(copy))) order.reordered = true;
  return copy;
}

/**
 * The sorted-key text of a `sortedCopy` result, assembled here: for the copies whose
 * integer-like keys the engine would list out of sorted order. The copy holds only plain JSON
 * data, already checked, so nothing here can be refused.
 */
function serialise(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(serialise).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (!isSorted(keys)) keys.sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${serialise(record[key])}`).join(',')}}`;
}
