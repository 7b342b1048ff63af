import { KeelError } from '../../errors/keel-error.ts';

/** A value that survives a JSON round trip unchanged. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { readonly [key: string]: JsonValue };

/**
 * The most bytes of JSON text one stored value holds: a run's result or error, a journaled
 * syscall result, a task. Stores refuse a larger one with `KEEL_PAYLOAD_TOO_LARGE`.
 */
export const MAX_STORED_JSON_BYTES = 1024 * 1024;

/**
 * Whether the JSON text of `value` takes at most `maxBytes` in UTF-8: measured, as a store
 * would measure it (serialising a small value costs less than bounding it would).
 *
 * @example
 * ```ts
 * if (!jsonFits(result, MAX_STORED_JSON_BYTES)) throw tooLarge();
 * ```
 */
export function jsonFits(value: unknown, maxBytes: number): boolean {
  const text = JSON.stringify(value);
  return text === undefined || Buffer.byteLength(text) <= maxBytes;
}

/** How much of its message and hint an error keeps when it is cut to be stored. */
const KEPT_MESSAGE_CHARACTERS = 4096;
const KEPT_HINT_CHARACTERS = 1024;

/**
 * The error as a store can keep it: itself when its JSON fits in
 * {@link MAX_STORED_JSON_BYTES}, else its code, retryability and the start of its message and
 * hint, without details, saying that it was cut.
 *
 * @example
 * ```ts
 * const kept = storableError(failure); // what the journal keeps and the agent is told
 * ```
 */
export function storableError(error: KeelError): KeelError {
  if (jsonFits(error.toJSON(), MAX_STORED_JSON_BYTES)) return error;
  return new KeelError(
    error.code,
    `${error.message.slice(0, KEPT_MESSAGE_CHARACTERS)}… (cut: the error was larger than the ${MAX_STORED_JSON_BYTES} bytes a stored value holds)`,
    {
      hint: error.hint.slice(0, KEPT_HINT_CHARACTERS),
      retryable: error.retryable,
      ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    },
  );
}

/**
 * Whether `value` nests objects and lists at most `maxDepth` deep, found without recursion: a
 * parsed message from an untrusted party is checked with it before anything that recurses
 * over it (a schema, a canonical copy) meets a nesting deep enough to exhaust the stack.
 *
 * @example
 * ```ts
 * if (!nestedWithin(JSON.parse(text), 128)) throw tooDeep();
 * ```
 */
export function nestedWithin(value: unknown, maxDepth: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [current, depth] = next;
    if (typeof current !== 'object' || current === null) continue;
    if (depth >= maxDepth) return false;
    for (const member of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof member === 'object' && member !== null) pending.push([member, depth + 1]);
    }
  }
  return true;
}
