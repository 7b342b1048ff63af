/**
 * Serialises a JSON value deterministically: object keys sorted, no whitespace, `undefined`
 * members dropped. Two equal values always give the same string, so hashes over it are stable
 * across processes, engines and storage round trips.
 *
 * Throws on values JSON cannot represent faithfully (non-finite numbers, bigint, functions,
 * symbols, cycles) rather than silently changing them.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return serialise(value, new Set());
}

function serialise(value: unknown, ancestors: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`canonicalJson: cannot serialise a ${typeof value}`);
  }
  const object = value as object;
  if (ancestors.has(object)) throw new TypeError('canonicalJson: cyclic value');
  ancestors.add(object);
  try {
    if (Array.isArray(object)) {
      return `[${object.map((item) => (item === undefined ? 'null' : serialise(item, ancestors))).join(',')}]`;
    }
    if (object instanceof Date) return JSON.stringify(object.toISOString());
    const record = object as Record<string, unknown>;
    const members: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = record[key];
      if (member === undefined) continue;
      members.push(`${JSON.stringify(key)}:${serialise(member, ancestors)}`);
    }
    return `{${members.join(',')}}`;
  } finally {
    ancestors.delete(object);
  }
}
