import { KeelError } from '../../../platform/errors/keel-error.ts';
import { splitByteLines } from './split-byte-lines.ts';

const EXCERPT_LENGTH = 120;
const JSON_WHITESPACE_ONLY = /^[ \t\r]*$/;

/** Limits for {@link decodeNdjson}. */
export interface DecodeNdjsonOptions {
  /** A line (the bytes before its LF) longer than this fails the stream. */
  readonly maxLineBytes: number;
}

/**
 * Decodes newline-delimited JSON (Ollama's streaming format) into one value per line. Blank
 * lines are skipped, a CR before the LF is tolerated, a leading BOM is dropped, and a last
 * line without a newline is still parsed.
 *
 * A line that is not UTF-8 JSON throws `KEEL_PROVIDER_PROTOCOL` with `{ line, excerpt }` (the
 * 1-based line number, counting blank lines, and the first 120 characters of the line); a
 * line over `maxLineBytes` throws `KEEL_PROVIDER_RESPONSE_TOO_LARGE` with `{ limit }`.
 * Errors of the underlying stream pass through unchanged. Stopping early closes `chunks`.
 *
 * @example
 * ```ts
 * const response = await fetch('http://127.0.0.1:11434/api/chat', { method: 'POST', body });
 * const chunks = boundedChunks(response.body, 8_388_608);
 * for await (const value of decodeNdjson(chunks, { maxLineBytes: 1_048_576 })) {
 *   handle(value);
 * }
 * ```
 */
export async function* decodeNdjson(
  chunks: AsyncIterable<Uint8Array>,
  options: DecodeNdjsonOptions,
): AsyncGenerator<unknown, void, undefined> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let lineNumber = 0;
  const lines = splitByteLines(chunks, {
    maxLineBytes: options.maxLineBytes,
    carriageReturnEndsLine: false,
    yieldUnterminatedLine: true,
  });
  for await (const bytes of lines) {
    lineNumber += 1;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch (error) {
      throw notJson(lineNumber, new TextDecoder().decode(bytes), error);
    }
    if (lineNumber === 1 && text.startsWith('\uFEFF')) text = text.slice(1);
    // JSON.parse ignores the surrounding whitespace, including a CR before the LF.
    if (JSON_WHITESPACE_ONLY.test(text)) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw notJson(lineNumber, text, error);
    }
    yield value;
  }
}

function notJson(line: number, text: string, cause: unknown): KeelError {
  // Two code units per character at most, so the slice before counting characters is enough.
  const head = text.slice(0, EXCERPT_LENGTH * 2).replace(/\r$/, '');
  const excerpt = Array.from(head).slice(0, EXCERPT_LENGTH).join('');
  return new KeelError(
    'KEEL_PROVIDER_PROTOCOL',
    `line ${line} of the provider stream is not JSON`,
    { details: { line, excerpt }, cause },
  );
}
