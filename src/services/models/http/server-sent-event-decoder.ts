import { KeelError } from '../../../platform/errors/keel-error.ts';
import { splitByteLines } from './split-byte-lines.ts';

const COLON = 0x3a;

/** One event of a `text/event-stream`, as the WHATWG EventSource rules dispatch it. */
export interface ServerSentEvent {
  /** The `event` field, or `'message'` when the event had none (or an empty one). */
  readonly event: string;
  /** The `data` lines of the event joined with `\n`. */
  readonly data: string;
  /**
   * The last event ID in effect when the event was dispatched: like `EventSource.lastEventId`
   * it persists from earlier events until an `id` field changes it; `undefined` until then.
   */
  readonly id: string | undefined;
  /**
   * The reconnection time in effect, in milliseconds: the last valid `retry` field seen so far
   * in the stream (also one in a block without data); `undefined` until then.
   */
  readonly retryMs: number | undefined;
}

/** Limits for {@link decodeServerSentEvents}. */
export interface DecodeServerSentEventsOptions {
  /** An event whose lines add up to more bytes than this fails the stream. */
  readonly maxEventBytes: number;
}

/**
 * Decodes a `text/event-stream` body into events, following the WHATWG EventSource parsing
 * rules: UTF-8 that is decoded correctly across chunk boundaries, an optional leading BOM,
 * CRLF / LF / CR line ends (also split between chunks), `:` comment lines, `field:value` with
 * one optional space after the colon, data lines joined with `\n`, an event dispatched at a
 * blank line only when it had a `data` field, unknown fields ignored, `retry` only when all
 * ASCII digits, and an `id` containing NUL ignored.
 *
 * As the specification requires, an event that is not terminated by a blank line when the
 * stream ends is discarded, not dispatched.
 *
 * The size of an event is the byte count of its non-comment lines (without line ends); when it
 * passes `maxEventBytes`, or a single line does, the generator throws
 * `KEEL_PROVIDER_RESPONSE_TOO_LARGE` with `{ limit }`, holding at most about twice the limit.
 * Errors of the underlying stream pass through unchanged. Stopping early (`break`, `return()`)
 * closes `chunks`, which for a fetch body cancels the stream.
 *
 * @example
 * ```ts
 * const response = await fetch(url, { method: 'POST', body, headers, signal });
 * const chunks = boundedChunks(response.body, 8_388_608);
 * for await (const event of decodeServerSentEvents(chunks, { maxEventBytes: 1_048_576 })) {
 *   if (event.data === '[DONE]') break;
 *   handle(JSON.parse(event.data));
 * }
 * ```
 */
export async function* decodeServerSentEvents(
  chunks: AsyncIterable<Uint8Array>,
  options: DecodeServerSentEventsOptions,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  const limit = options.maxEventBytes;
  // The BOM is handled once below; elsewhere U+FEFF is content.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let isFirstLine = true;
  let eventBytes = 0;
  let eventType = '';
  let dataLines: string[] = [];
  let lastEventId: string | undefined;
  let retryMs: number | undefined;

  const lines = splitByteLines(chunks, {
    maxLineBytes: limit,
    carriageReturnEndsLine: true,
    yieldUnterminatedLine: false,
  });
  for await (const rawLine of lines) {
    let line = rawLine;
    if (isFirstLine) {
      isFirstLine = false;
      if (line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) line = line.subarray(3);
    }
    if (line.length === 0) {
      const hasData = dataLines.length > 0;
      const event = eventType === '' ? 'message' : eventType;
      const data = dataLines.join('\n');
      eventType = '';
      dataLines = [];
      eventBytes = 0;
      if (hasData) yield { event, data, id: lastEventId, retryMs };
      continue;
    }
    if (line[0] === COLON) continue;
    eventBytes += line.length;
    if (eventBytes > limit) {
      throw new KeelError(
        'KEEL_PROVIDER_RESPONSE_TOO_LARGE',
        `a server-sent event exceeded ${limit} bytes`,
        { details: { limit } },
      );
    }
    const text = decoder.decode(line);
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        eventType = value;
        break;
      case 'data':
        dataLines.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) lastEventId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) {
          const parsed = Number(value);
          if (Number.isSafeInteger(parsed)) retryMs = parsed;
        }
        break;
      default:
        // Unknown fields are ignored, as the specification says.
        break;
    }
  }
}
