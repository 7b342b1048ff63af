/**
 * Reading JSON texts safely: parsing without throwing, refusing nesting deep enough to overflow
 * a later serialiser, and turning a JSON text into a tool call's arguments object.
 */
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import {
  MAX_TEXT_TOOL_CALL_JSON_DEPTH,
  type TextToolCallIssueReason,
} from './text-tool-call-reading.ts';

/**
 * A tool call's arguments, or why there are none.
 *
 * @example
 * ```ts
 * const outcome: JsonArgumentsOutcome = { reason: 'invalid-arguments' };
 * ```
 */
export type JsonArgumentsOutcome =
  | { readonly arguments: JsonObject }
  | { readonly reason: TextToolCallIssueReason };

/**
 * The result of {@link tryParseJson}.
 *
 * @example
 * ```ts
 * const parsed: JsonParse = { ok: true, value: [1, 2] };
 * ```
 */
export type JsonParse = { readonly ok: true; readonly value: JsonValue } | { readonly ok: false };

/**
 * A JSON text that must hold an arguments object: the body of a `<function=…>` tag (`inTag`,
 * where bad JSON is `invalid-json`) or the string value of an `arguments` member.
 *
 * @example
 * ```ts
 * readJsonArguments('{"path": "a.ts"}', true); // { arguments: { path: 'a.ts' } }
 * readJsonArguments('{"path":', true); // { reason: 'invalid-json' }
 * readJsonArguments('[1]', false); // { reason: 'invalid-arguments' }
 * ```
 */
export function readJsonArguments(source: string, inTag: boolean): JsonArgumentsOutcome {
  if (exceedsJsonDepth(source)) return { reason: 'too-deeply-nested' };
  const parsed = tryParseJson(source);
  if (!parsed.ok) return { reason: inTag ? 'invalid-json' : 'invalid-arguments' };
  return isJsonObject(parsed.value) ? { arguments: parsed.value } : { reason: 'invalid-arguments' };
}

/**
 * Whether a JSON value is an object (not an array, not `null`).
 *
 * @example
 * ```ts
 * isJsonObject({ a: 1 }); // true
 * isJsonObject([1]); // false
 * ```
 */
export function isJsonObject(value: JsonValue): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `JSON.parse` that answers instead of throwing.
 *
 * @example
 * ```ts
 * tryParseJson('{"a": 1}'); // { ok: true, value: { a: 1 } }
 * tryParseJson('{"a":'); // { ok: false }
 * ```
 */
export function tryParseJson(source: string): JsonParse {
  try {
    return { ok: true, value: JSON.parse(source) as JsonValue };
  } catch {
    // Not JSON is an answer here, not a failure: the caller turns it into an issue or prose.
    return { ok: false };
  }
}

/**
 * Whether a JSON text nests arrays and objects deeper than {@link MAX_TEXT_TOOL_CALL_JSON_DEPTH};
 * brackets inside strings do not count. Linear in the length of the text.
 *
 * @example
 * ```ts
 * exceedsJsonDepth('[[1]]'); // false
 * exceedsJsonDepth('['.repeat(65)); // true
 * exceedsJsonDepth(`"${'['.repeat(65)}"`); // false
 * ```
 */
export function exceedsJsonDepth(source: string): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < source.length; index += 1) {
    const character = source[index];
    if (inString) {
      if (character === '\\') index += 1;
      else if (character === '"') inString = false;
    } else if (character === '"') {
      inString = true;
    } else if (character === '{' || character === '[') {
      depth += 1;
      if (depth > MAX_TEXT_TOOL_CALL_JSON_DEPTH) return true;
    } else if (character === '}' || character === ']') {
      depth -= 1;
    }
  }
  return false;
}
