import { KeelError } from '../../../platform/errors/keel-error.ts';

const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** How {@link splitByteLines} recognises line ends and treats the end of the stream. */
export interface SplitByteLinesOptions {
  /** A line longer than this many bytes (without its line end) fails the stream. */
  readonly maxLineBytes: number;
  /** `true`: CR, LF and CRLF end a line (server-sent events). `false`: only LF does. */
  readonly carriageReturnEndsLine: boolean;
  /** Whether a last line with no line end is yielded (`true`) or discarded (`false`). */
  readonly yieldUnterminatedLine: boolean;
}

/**
 * Splits a byte stream into lines at the byte level, so a multi-byte UTF-8 character split
 * between chunks is reassembled before anyone decodes it (CR and LF never occur inside a
 * multi-byte sequence). A CR at the end of one chunk and an LF at the start of the next are
 * one line end. Runs in linear time: each byte is scanned once and a line is copied once.
 *
 * Each yielded array may be a view into the caller's chunk; use it before pulling the next
 * line. A line over `maxLineBytes` throws `KEEL_PROVIDER_RESPONSE_TOO_LARGE` with
 * `{ limit }` as soon as the partial line passes the cap, so memory stays bounded.
 *
 * @example
 * ```ts
 * for await (const line of splitByteLines(boundedChunks(response.body, 8_388_608), {
 *   maxLineBytes: 65_536,
 *   carriageReturnEndsLine: false,
 *   yieldUnterminatedLine: true,
 * })) {
 *   handle(new TextDecoder().decode(line));
 * }
 * ```
 */
export async function* splitByteLines(
  chunks: AsyncIterable<Uint8Array>,
  options: SplitByteLinesOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const limit = options.maxLineBytes;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'a line byte limit must be a positive integer', {
      details: { limit },
    });
  }
  // The partial line carried between chunks, in one buffer that doubles as it fills: a line
  // that arrives a byte at a time costs its length, not one small array per byte.
  let pending = new Uint8Array(0);
  let pendingBytes = 0;
  // Set after a CR line end, so an LF that follows (even in the next chunk) is not a new line.
  let skipLineFeed = false;

  const takeLine = (chunk: Uint8Array, start: number, end: number): Uint8Array => {
    const length = pendingBytes + end - start;
    if (length > limit) throw lineTooLarge(limit);
    if (pendingBytes === 0) return chunk.subarray(start, end);
    const line = new Uint8Array(length);
    line.set(pending.subarray(0, pendingBytes), 0);
    line.set(chunk.subarray(start, end), pendingBytes);
    pendingBytes = 0;
    return line;
  };

  const keep = (part: Uint8Array): void => {
    if (pendingBytes + part.length > pending.length) {
      const grown = new Uint8Array(
        Math.min(limit, Math.max(pendingBytes + part.length, pending.length * 2, 256)),
      );
      grown.set(pending.subarray(0, pendingBytes), 0);
      pending = grown;
    }
    // A copy: the producer may reuse its buffer once we ask for the next chunk.
    pending.set(part, pendingBytes);
    pendingBytes += part.length;
  };

  for await (const chunk of chunks) {
    let lineStart = 0;
    for (let index = 0; index < chunk.length; index += 1) {
      const byte = chunk[index];
      if (byte === LINE_FEED) {
        if (skipLineFeed) {
          skipLineFeed = false;
        } else {
          yield takeLine(chunk, lineStart, index);
        }
        lineStart = index + 1;
      } else if (byte === CARRIAGE_RETURN && options.carriageReturnEndsLine) {
        yield takeLine(chunk, lineStart, index);
        skipLineFeed = true;
        lineStart = index + 1;
      } else {
        skipLineFeed = false;
      }
    }
    const rest = chunk.length - lineStart;
    if (rest > 0) {
      if (pendingBytes + rest > limit) throw lineTooLarge(limit);
      keep(chunk.subarray(lineStart));
    }
  }
  if (options.yieldUnterminatedLine && pendingBytes > 0) {
    yield takeLine(new Uint8Array(0), 0, 0);
  }
}

function lineTooLarge(limit: number): KeelError {
  return new KeelError(
    'KEEL_PROVIDER_RESPONSE_TOO_LARGE',
    `a line of the provider stream exceeded ${limit} bytes`,
    { details: { limit } },
  );
}
