/**
 * Qwen3-coder's XML-style arguments: `<parameter=KEY>VALUE</parameter>` elements inside a
 * `<function=NAME>` tag.
 */
import type { JsonValue } from '../../../platform/storage/ports/json-value.ts';
import { isWhitespace } from './forward-finder.ts';
import {
  exceedsJsonDepth,
  type JsonArgumentsOutcome,
  tryParseJson,
} from './read-json-arguments.ts';
import type { TextToolCallIssueReason } from './text-tool-call-reading.ts';

/**
 * The opening of a parameter element.
 *
 * @example
 * ```ts
 * body.trim().startsWith(PARAMETER_OPEN);
 * ```
 */
export const PARAMETER_OPEN = '<parameter=';
const PARAMETER_CLOSE = '</parameter>';

type ValueOutcome = { readonly value: JsonValue } | { readonly reason: TextToolCallIssueReason };

/**
 * `<parameter=KEY>VALUE</parameter>` elements, with only whitespace between them, as an
 * arguments object. One leading and one trailing newline of a value are dropped; if the trimmed
 * rest parses as JSON, that value is used, otherwise the string as written.
 *
 * @example
 * ```ts
 * readXmlParameters('<parameter=path>\na.ts\n</parameter><parameter=limit>10</parameter>');
 * // { arguments: { path: 'a.ts', limit: 10 } }
 * readXmlParameters('<parameter=path>a.ts'); // { reason: 'unclosed-block' }
 * ```
 */
export function readXmlParameters(source: string): JsonArgumentsOutcome {
  const entries: [string, JsonValue][] = [];
  let position = 0;
  for (;;) {
    while (isWhitespace(source[position])) position += 1;
    if (position >= source.length) break;
    if (!source.startsWith(PARAMETER_OPEN, position)) return { reason: 'invalid-tool-call' };
    const keyEnd = source.indexOf('>', position + PARAMETER_OPEN.length);
    if (keyEnd === -1) return { reason: 'invalid-tool-call' };
    const key = source.slice(position + PARAMETER_OPEN.length, keyEnd).trim();
    if (key === '') return { reason: 'invalid-tool-call' };
    const close = source.indexOf(PARAMETER_CLOSE, keyEnd + 1);
    if (close === -1) return { reason: 'unclosed-block' };
    const value = readParameterValue(source.slice(keyEnd + 1, close));
    if ('reason' in value) return value;
    entries.push([key, value.value]);
    position = close + PARAMETER_CLOSE.length;
  }
  // fromEntries defines own properties: a `__proto__` key stays data, not a prototype.
  return { arguments: Object.fromEntries(entries) };
}

function readParameterValue(raw: string): ValueOutcome {
  let value = raw;
  if (value.startsWith('\n')) value = value.slice(1);
  if (value.endsWith('\n')) value = value.slice(0, -1);
  const candidate = value.trim();
  if (candidate === '') return { value };
  if (exceedsJsonDepth(candidate)) return { reason: 'too-deeply-nested' };
  const parsed = tryParseJson(candidate);
  return { value: parsed.ok ? parsed.value : value };
}
