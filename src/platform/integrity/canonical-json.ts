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
 * its objects' keys inserted in sorted order; refuses what `shapeOf` refuses. Engines
 * list integer-like keys first whatever the insertion order: when that puts an object's keys
 * out of sorted order, `order.reordered` is set.
 */
function sortedCopy(value: unknown, depth: number, order: { reordered: boolean }): unknown {
  switch (shapeOf(value, depth)) {
    case 'scalar':
      // JSON has one zero: -0 reads back as 0.
      return value === 0 ? 0 : value;
    case 'date':
      return (value as Date).toISOString();
    case 'array': {
      const array = value as readonly unknown[];
      const copy: unknown[] = new Array(array.length);
      for (let index = 0; index < array.length; index += 1) {
        const item: unknown = array[index];
        copy[index] = item === undefined ? null : sortedCopy(item, depth + 1, order);
      }
      return copy;
    }
    case 'object':
      break;
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
    setMember(copy, key, sortedCopy(member, depth + 1, order));
  }
  if (integerLike && !isSorted(Object.keys(copy))) order.reordered = true;
  return copy;
}

/**
 * Sets `object[key]` as an own enumerable member, also when `key` is `__proto__` (assigning
 * that would set the object's prototype instead of adding the key).
 *
 * @example
 * ```ts
 * setMember(copy, '__proto__', 1); // Object.keys(copy) includes '__proto__'
 * ```
 */
export function setMember(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(object, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else object[key] = value;
}

/**
 * What a value is to canonical JSON: a scalar (null, string, boolean, finite number), a Date,
 * an array or a plain object; throws `CanonicalJsonError` for anything else, and past
 * `MAX_DEPTH`.
 */
function shapeOf(value: unknown, depth: number): 'scalar' | 'date' | 'array' | 'object' {
  if (value === null) return 'scalar';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return 'scalar';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError('canonicalJson: non-finite number');
      return 'scalar';
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`canonicalJson: cannot serialise a ${typeof value}`);
  }
  if (depth > MAX_DEPTH)
    throw new CanonicalJsonError('canonicalJson: value nested too deeply (or cyclic)');
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new CanonicalJsonError('canonicalJson: invalid Date');
    return 'date';
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CanonicalJsonError(
      `canonicalJson: cannot serialise a ${(value as object).constructor?.name ?? 'non-plain object'}`,
    );
  }
  return 'object';
}

/**
 * Throws what `canonicalJson(value)` would throw, without building anything: for a caller that
 * only needs to know that a value has a faithful JSON form (an executor's result, before it is
 * journaled and sent). Reads each member once.
 *
 * @example
 * ```ts
 * assertCanonicalJson({ ok: true }); // returns
 * assertCanonicalJson({ at: Number.NaN }); // throws CanonicalJsonError
 * ```
 */
export function assertCanonicalJson(value: unknown): void {
  check(value, 0);
}

function check(value: unknown, depth: number): void {
  switch (shapeOf(value, depth)) {
    case 'scalar':
    case 'date':
      return;
    case 'array':
      for (const item of value as readonly unknown[]) {
        if (item !== undefined) check(item, depth + 1);
      }
      return;
    case 'object':
      for (const key of Object.keys(value as object)) {
        const member = (value as Record<string, unknown>)[key];
        if (member !== undefined) check(member, depth + 1);
      }
  }
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
