import { KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';

/**
 * Reads a whole response body as UTF-8 text, up to `maxBytes`. Past the cap it cancels the
 * stream, so the connection is released, and throws `KEEL_PROVIDER_RESPONSE_TOO_LARGE` with
 * `{ limit }`. A null body reads as `''`. A failing read becomes a KeelError: `KEEL_ABORTED`
 * or `KEEL_TIMEOUT` for an aborted request, `KEEL_PROVIDER_STREAM_INTERRUPTED` otherwise.
 *
 * @example
 * ```ts
 * const response = await fetch(url);
 * const text = await readBoundedText(response.body, 1_048_576);
 * ```
 */
export async function readBoundedText(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<string> {
  const decoder = new TextDecoder('utf-8');
  const parts: string[] = [];
  for await (const chunk of boundedChunks(body, maxBytes)) {
    parts.push(decoder.decode(chunk, { stream: true }));
  }
  parts.push(decoder.decode());
  return parts.join('');
}

/**
 * Yields the chunks of a response body while their running total stays within `maxBytes`.
 * Past the cap it cancels the stream and throws `KEEL_PROVIDER_RESPONSE_TOO_LARGE` with
 * `{ limit }`; when the consumer stops early (`break`, `return()`), it cancels the stream too,
 * so the connection is released. A null body yields nothing. A failing read becomes a
 * KeelError: `KEEL_ABORTED` or `KEEL_TIMEOUT` for an aborted request,
 * `KEEL_PROVIDER_STREAM_INTERRUPTED` otherwise.
 *
 * @example
 * ```ts
 * const response = await fetch(url, { signal });
 * const chunks = boundedChunks(response.body, 8_388_608);
 * for await (const event of decodeServerSentEvents(chunks, { maxEventBytes: 1_048_576 })) {
 *   handle(event);
 * }
 * ```
 */
export async function* boundedChunks(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): AsyncGenerator<Uint8Array, void, undefined> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'a body byte limit must be a whole number', {
      details: { limit: maxBytes },
    });
  }
  if (body === null) return;
  const reader = body.getReader();
  // Once the stream has ended or failed there is nothing left to cancel.
  let settled = false;
  try {
    let total = 0;
    while (true) {
      // A read that fails has errored the stream, so it too leaves nothing to cancel.
      settled = true;
      const result = await readChunk(reader);
      if (result.done) return;
      settled = false;
      total += result.value.byteLength;
      if (total > maxBytes) {
        settled = true;
        const tooLarge = new KeelError(
          'KEEL_PROVIDER_RESPONSE_TOO_LARGE',
          `the provider response exceeded ${maxBytes} bytes`,
          { details: { limit: maxBytes } },
        );
        await cancelOrThrow(reader, tooLarge);
        throw tooLarge;
      }
      yield result.value;
    }
  } finally {
    if (!settled) {
      await cancelOrThrow(
        reader,
        new KeelError('KEEL_ABORTED', 'the consumer stopped reading the provider response'),
      );
    }
    reader.releaseLock();
  }
}

async function readChunk(reader: ReadableStreamDefaultReader<Uint8Array>) {
  try {
    return await reader.read();
  } catch (error) {
    throw toKeelError(error, 'KEEL_PROVIDER_STREAM_INTERRUPTED');
  }
}

/** Cancels the stream with `reason`; a cancellation that fails is surfaced, with its cause. */
async function cancelOrThrow(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  reason: KeelError,
): Promise<void> {
  try {
    await reader.cancel(reason);
  } catch (error) {
    throw new KeelError(reason.code, reason.message, {
      details: { ...reason.details, cancelFailed: true },
      cause: error,
    });
  }
}
