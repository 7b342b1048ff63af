import { Buffer } from 'node:buffer';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';

/** The most a tool result may take in the conversation, in UTF-8 bytes, note included. */
export const TOOL_RESULT_BYTE_LIMIT = 65_536;

/**
 * Cuts a text to at most `limitBytes` UTF-8 bytes, on a character boundary, ending it with a
 * note that says how much there was. A text within the limit comes back unchanged.
 *
 * @example
 * ```ts
 * capText('x'.repeat(100_000), 65_536); // 'xxx…\n[truncated: …]', 65,536 bytes at most
 * ```
 */
export function capText(text: string, limitBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limitBytes) return text;
  const note = `\n[truncated: the result has ${bytes.length} bytes; only the first part is shown]`;
  let end = Math.max(0, limitBytes - Buffer.byteLength(note, 'utf8'));
  // Back off from continuation bytes (10xxxxxx) so no character is cut in half.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end -= 1;
  return `${bytes.subarray(0, end).toString('utf8')}${note}`;
}

/**
 * The content of the tool message that answers a call: a string result as it is, any other
 * result as canonical JSON (sorted keys, so a replayed result reads exactly as the original
 * did), capped at {@link TOOL_RESULT_BYTE_LIMIT}.
 *
 * @example
 * ```ts
 * toolResultContent({ b: 1, a: 2 }); // '{"a":2,"b":1}'
 * ```
 */
export function toolResultContent(result: JsonValue): string {
  const text = typeof result === 'string' ? result : canonicalJson(result);
  return capText(text, TOOL_RESULT_BYTE_LIMIT);
}

/**
 * The content of the tool message that reports a failed or refused call to the model.
 *
 * @example
 * ```ts
 * toolErrorContent('KEEL_NOT_FOUND', 'no such file'); // '{"error":{"code":"KEEL_NOT_FOUND","message":"no such file"}}'
 * ```
 */
export function toolErrorContent(code: string, message: string): string {
  return capText(canonicalJson({ error: { code, message } }), TOOL_RESULT_BYTE_LIMIT);
}
