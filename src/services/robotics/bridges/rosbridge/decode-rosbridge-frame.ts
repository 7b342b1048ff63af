import type { RawData } from 'ws';
import { z } from 'zod';

/**
 * What one incoming rosbridge frame turned out to be. Only `publish` and `status` carry data;
 * the other kinds say why the frame was dropped, so the client can count and log it.
 */
export type DecodedRosbridgeFrame =
  | {
      readonly kind: 'publish';
      readonly topic: string;
      readonly message: Readonly<Record<string, unknown>>;
    }
  | {
      readonly kind: 'status';
      readonly level: string;
      readonly text: string;
      readonly id: string | undefined;
    }
  /** A well-formed operation Keel does not handle (`fragment`, `service_response`, …). */
  | { readonly kind: 'ignored'; readonly op: string }
  | { readonly kind: 'oversized'; readonly bytes: number }
  | { readonly kind: 'unparseable'; readonly reason: string }
  | { readonly kind: 'invalid'; readonly reason: string };

const operationSchema = z.looseObject({ op: z.string().min(1) });

const publishFrameSchema = z.looseObject({
  op: z.literal('publish'),
  topic: z.string().min(1).max(1024),
  msg: z.record(z.string(), z.unknown()),
});

const statusFrameSchema = z.looseObject({
  op: z.literal('status'),
  level: z.string().max(64),
  msg: z.string(),
  id: z.string().optional(),
});

/**
 * Decodes one WebSocket frame from a rosbridge v2 server: size check first (before any
 * decoding), then JSON, then the shape of the operation. Never throws.
 *
 * Rosbridge encodes non-finite floats as `null`, but some versions still write bare `NaN` and
 * `Infinity` tokens inside arrays (rosbridge_suite issue 916), which is not JSON. When strict
 * parsing fails, those tokens are rewritten outside strings — `NaN` to `null`, `Infinity` to a
 * number that parses as `Infinity` — so a laser scan with invalid beams is not lost.
 *
 * @example
 * ```ts
 * const frame = decodeRosbridgeFrame(data, 1_048_576);
 * if (frame.kind === 'publish') deliver(frame.topic, frame.message);
 * ```
 */
export function decodeRosbridgeFrame(data: RawData, maxFrameBytes: number): DecodedRosbridgeFrame {
  const bytes = frameBytes(data);
  if (bytes.byteLength > maxFrameBytes) return { kind: 'oversized', bytes: bytes.byteLength };
  let value: unknown;
  try {
    value = parseRosbridgeJson(bytes.toString('utf8'));
  } catch (error) {
    return { kind: 'unparseable', reason: error instanceof Error ? error.message : String(error) };
  }
  const operation = operationSchema.safeParse(value);
  if (!operation.success) return { kind: 'invalid', reason: z.prettifyError(operation.error) };
  switch (operation.data.op) {
    case 'publish': {
      const frame = publishFrameSchema.safeParse(value);
      if (!frame.success) return { kind: 'invalid', reason: z.prettifyError(frame.error) };
      return { kind: 'publish', topic: frame.data.topic, message: frame.data.msg };
    }
    case 'status': {
      const frame = statusFrameSchema.safeParse(value);
      if (!frame.success) return { kind: 'invalid', reason: z.prettifyError(frame.error) };
      return { kind: 'status', level: frame.data.level, text: frame.data.msg, id: frame.data.id };
    }
    default:
      return { kind: 'ignored', op: operation.data.op.slice(0, 64) };
  }
}

function frameBytes(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

/**
 * `JSON.parse`, falling back to a copy with bare `NaN`/`Infinity` tokens rewritten.
 *
 * @example
 * ```ts
 * parseRosbridgeJson('{"ranges":[1.5,NaN,Infinity]}'); // { ranges: [1.5, null, Infinity] }
 * ```
 */
export function parseRosbridgeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (!(text.includes('NaN') || text.includes('Infinity'))) throw error;
    return JSON.parse(rewriteNonFiniteTokens(text));
  }
}

// JSON.parse reads 1e999 as Infinity, which keeps the sign of -Infinity and its meaning
// (REP 117: +Infinity is "no return within range"); NaN has no JSON form but null.
function rewriteNonFiniteTokens(text: string): string {
  const parts: string[] = [];
  let segmentStart = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const character = text[index];
    if (inString) {
      if (character === '\\') index += 1;
      else if (character === '"') inString = false;
      continue;
    }
    if (character === '"') {
      inString = true;
    } else if (character === 'N' && text.startsWith('NaN', index)) {
      parts.push(text.slice(segmentStart, index), 'null');
      index += 'NaN'.length - 1;
      segmentStart = index + 1;
    } else if (character === 'I' && text.startsWith('Infinity', index)) {
      parts.push(text.slice(segmentStart, index), '1e999');
      index += 'Infinity'.length - 1;
      segmentStart = index + 1;
    }
  }
  parts.push(text.slice(segmentStart));
  return parts.join('');
}
