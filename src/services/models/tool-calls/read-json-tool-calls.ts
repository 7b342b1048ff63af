/**
 * Tool calls written as JSON: an object, or array of objects, with a `name` and `arguments` (or
 * `parameters`), as Hermes/Qwen write inside `<tool_call>` and models write in fenced blocks.
 */
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import {
  exceedsJsonDepth,
  isJsonObject,
  type JsonArgumentsOutcome,
  readJsonArguments,
  tryParseJson,
} from './read-json-arguments.ts';
import {
  checkToolCallName,
  type ParsedToolCall,
  TEXT_TOOL_CALL_NAME_PATTERN,
  type TextToolCallContext,
  type TextToolCallReading,
} from './text-tool-call-reading.ts';

const JSON_FENCE_KEYS = new Set(['name', 'arguments', 'parameters', 'id', 'type']);

/**
 * Reads a JSON object or array of call objects. With `lenient` (a ```` ```json ```` fence), a
 * text that is not JSON or not shaped like calls is prose rather than an issue.
 *
 * @example
 * ```ts
 * const context = { toolNames: undefined };
 * readJsonToolCalls('{"name": "read_file", "arguments": {"path": "a.ts"}}', context, false);
 * // { kind: 'calls', calls: [{ name: 'read_file', arguments: { path: 'a.ts' } }] }
 * readJsonToolCalls('{"port": 80}', context, true); // { kind: 'prose' }
 * readJsonToolCalls('{"port": 80}', context, false); // { kind: 'issue', reason: 'invalid-tool-call' }
 * ```
 */
export function readJsonToolCalls(
  source: string,
  context: TextToolCallContext,
  lenient: boolean,
): TextToolCallReading {
  const trimmed = source.trim();
  if (exceedsJsonDepth(trimmed)) {
    return lenient ? { kind: 'prose' } : { kind: 'issue', reason: 'too-deeply-nested' };
  }
  const parsed = tryParseJson(trimmed);
  if (!parsed.ok) return lenient ? { kind: 'prose' } : { kind: 'issue', reason: 'invalid-json' };
  const items = Array.isArray(parsed.value) ? parsed.value : [parsed.value];
  if (items.length === 0) {
    return lenient ? { kind: 'prose' } : { kind: 'issue', reason: 'invalid-tool-call' };
  }
  if (lenient && !items.every((item) => looksLikeToolCall(item, context))) return { kind: 'prose' };
  const calls: ParsedToolCall[] = [];
  for (const item of items) {
    const reading = readJsonCall(item, context);
    if (reading.kind !== 'calls') return reading;
    for (const call of reading.calls) calls.push(call);
  }
  return { kind: 'calls', calls };
}

function readJsonCall(item: JsonValue, context: TextToolCallContext): TextToolCallReading {
  if (!isJsonObject(item)) return { kind: 'issue', reason: 'invalid-tool-call' };
  let call: JsonObject = item;
  const wrapped = Object.hasOwn(item, 'function') ? item.function : undefined;
  // The OpenAI wire shape: {"type": "function", "function": {"name": …, "arguments": "…"}}.
  if (!Object.hasOwn(item, 'name') && wrapped !== undefined && isJsonObject(wrapped)) {
    call = wrapped;
  }
  const name = Object.hasOwn(call, 'name') ? call.name : undefined;
  if (typeof name !== 'string') return { kind: 'issue', reason: 'invalid-tool-call' };
  const nameProblem = checkToolCallName(name, context);
  if (nameProblem !== undefined) return { kind: 'issue', reason: nameProblem };
  let given: JsonValue | undefined;
  if (Object.hasOwn(call, 'arguments')) given = call.arguments;
  else if (Object.hasOwn(call, 'parameters')) given = call.parameters;
  let outcome: JsonArgumentsOutcome;
  if (given === undefined) outcome = { arguments: {} };
  else if (typeof given === 'string') outcome = readJsonArguments(given.trim(), false);
  else if (isJsonObject(given)) outcome = { arguments: given };
  else outcome = { reason: 'invalid-arguments' };
  if ('reason' in outcome) return { kind: 'issue', reason: outcome.reason };
  return { kind: 'calls', calls: [{ name, arguments: outcome.arguments }] };
}

function looksLikeToolCall(item: JsonValue, context: TextToolCallContext): boolean {
  if (!isJsonObject(item)) return false;
  const keys = Object.keys(item);
  if (!keys.every((key) => JSON_FENCE_KEYS.has(key))) return false;
  if (!Object.hasOwn(item, 'arguments') && !Object.hasOwn(item, 'parameters')) return false;
  const name = item.name;
  return (
    typeof name === 'string' &&
    TEXT_TOOL_CALL_NAME_PATTERN.test(name) &&
    (context.toolNames === undefined || context.toolNames.has(name))
  );
}
