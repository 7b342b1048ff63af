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
  return serialise(value, 0);
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

function serialise(value: unknown, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`canonicalJson: cannot serialise a ${typeof value}`);
  }
  if (depth > MAX_DEPTH)
    throw new CanonicalJsonError('canonicalJson: value nested too deeply (or cyclic)');
  if (Array.isArray(value)) {
    let text = '[';
    for (let index = 0; index < value.length; index += 1) {
      if (index > 0) text += ',';
      const item: unknown = value[index];
      text += item === undefined ? 'null' : serialise(item, depth + 1);
    }
    return `${text}]`;
  }
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    // Maps, Sets, buffers and class instances have no faithful JSON form.
    throw new CanonicalJsonError(
      `canonicalJson: cannot serialise a ${(value as object).constructor?.name ?? 'non-plain object'}`,
    );
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (!isSorted(keys)) keys.sort();
  let text = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    text += `${first ? '' : ','}${JSON.stringify(key)}:${serialise(member, depth + 1)}`;
    first = false;
  }
  return `${text}}`;
}
