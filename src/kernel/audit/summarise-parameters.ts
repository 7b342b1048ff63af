import { setMember } from '../../platform/integrity/canonical-json.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';

const MAX_STRING = 256;
const MAX_ITEMS = 20;
const MAX_DEPTH = 4;
const MAX_BYTES = 4096;

function summarise(value: unknown, depth: number): JsonValue {
  if (value === null || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value === 'string') {
    return value.length <= MAX_STRING
      ? value
      : `${value.slice(0, MAX_STRING)}…(+${value.length - MAX_STRING} chars)`;
  }
  if (depth >= MAX_DEPTH) return '[…]';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((item) => summarise(item, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`…(+${value.length - MAX_ITEMS} items)`);
    return items;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    const summary: Record<string, JsonValue> = {};
    for (const [key, member] of entries.slice(0, MAX_ITEMS)) {
      setMember(summary, key, summarise(member, depth + 1));
    }
    if (entries.length > MAX_ITEMS) summary['…'] = `+${entries.length - MAX_ITEMS} keys`;
    return summary;
  }
  return String(value);
}

/**
 * A bounded copy of an intent's parameters for the audit log and approval screens: long
 * strings, long lists, deep nesting and large totals are cut, and say so. The full intent is
 * identified by its digest.
 *
 * @example
 * ```ts
 * summariseParameters({ command: 'npm test', content: bigFile });
 * // { command: 'npm test', content: '<the first 256 characters>…(+119744 chars)' }
 * ```
 */
export function summariseParameters(params: Readonly<Record<string, unknown>>): JsonObject {
  const summary = summarise(params, 0) as JsonObject;
  // Only the size matters here, not the key order: the engine's own serialiser is enough.
  if (JSON.stringify(summary).length <= MAX_BYTES) return summary;
  return {
    '…': `parameters too large to record; keys: ${Object.keys(params).slice(0, 50).join(', ')}`,
  };
}
