import { ERROR_CATALOGUE, type ErrorCode, isErrorCode } from './error-catalogue.ts';

const KEEL_ERROR_MARKER = Symbol.for('keel.error');

/** The JSON form of a {@link KeelError}, as it crosses process and network boundaries. */
export interface KeelErrorJson {
  readonly code: ErrorCode;
  readonly message: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly hint: string;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly retryAfterMs?: number;
}

export interface KeelErrorOptions {
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
  /** Overrides the catalogue's hint with a more specific instruction. */
  readonly hint?: string;
  /** Overrides the catalogue's retryable flag (e.g. a retryable storage fault). */
  readonly retryable?: boolean;
  readonly retryAfterMs?: number;
}

/**
 * The error type of Keel. Carries a stable code from the catalogue, the HTTP status, whether
 * it is retryable, structured details and a hint that says what to do.
 *
 * @example
 * ```ts
 * throw new KeelError('KEEL_CAPABILITY_DENIED', 'agent a1 may not call tool shell', {
 *   details: { agentId: 'a1', kind: 'tool.call', resource: 'shell' },
 * });
 * ```
 */
export class KeelError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly hint: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly retryAfterMs: number | undefined;
  readonly [KEEL_ERROR_MARKER] = true;

  constructor(code: ErrorCode, message?: string, options: KeelErrorOptions = {}) {
    const catalogued = ERROR_CATALOGUE[code];
    super(
      message ?? catalogued.message,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'KeelError';
    this.code = code;
    this.status = catalogued.status;
    this.retryable = options.retryable ?? catalogued.retryable;
    this.hint = options.hint ?? catalogued.hint;
    this.details = Object.freeze({ ...(options.details ?? {}) });
    this.retryAfterMs = options.retryAfterMs;
  }

  toJSON(): KeelErrorJson {
    return {
      code: this.code,
      message: this.message,
      status: this.status,
      retryable: this.retryable,
      hint: this.hint,
      ...(Object.keys(this.details).length > 0 ? { details: this.details } : {}),
      ...(this.retryAfterMs === undefined ? {} : { retryAfterMs: this.retryAfterMs }),
    };
  }

  /** Rebuilds an error from its JSON form; an unrecognisable value becomes `KEEL_INTERNAL`. */
  static fromJSON(value: unknown): KeelError {
    if (typeof value === 'object' && value !== null) {
      const record = value as Record<string, unknown>;
      if (isErrorCode(record.code) && typeof record.message === 'string') {
        const details =
          typeof record.details === 'object' && record.details !== null
            ? (record.details as Record<string, unknown>)
            : undefined;
        return new KeelError(record.code, record.message, {
          ...(details === undefined ? {} : { details }),
          ...(typeof record.hint === 'string' ? { hint: record.hint } : {}),
          ...(typeof record.retryable === 'boolean' ? { retryable: record.retryable } : {}),
          ...(typeof record.retryAfterMs === 'number' ? { retryAfterMs: record.retryAfterMs } : {}),
        });
      }
    }
    return new KeelError('KEEL_INTERNAL', 'an unrecognisable error crossed a boundary', {
      details: { received: typeof value },
    });
  }
}

/**
 * Recognises a Keel error by its marker, also across realms and module copies.
 *
 * @example
 * ```ts
 * if (isKeelError(error) && error.retryable) await retry();
 * ```
 */
export function isKeelError(value: unknown): value is KeelError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[KEEL_ERROR_MARKER] === true
  );
}

/**
 * Converts anything thrown into a KeelError, keeping Keel errors as they are and wrapping the
 * rest with `cause` under the given code.
 *
 * @example
 * ```ts
 * throw toKeelError(error, 'KEEL_EXECUTOR_FAILED');
 * ```
 */
export function toKeelError(
  error: unknown,
  code: ErrorCode = 'KEEL_INTERNAL',
  message?: string,
): KeelError {
  if (isKeelError(error)) return error;
  if (error instanceof Error && error.name === 'TimeoutError') {
    return new KeelError('KEEL_TIMEOUT', message ?? error.message, { cause: error });
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return new KeelError('KEEL_ABORTED', message ?? error.message, { cause: error });
  }
  const text = error instanceof Error ? error.message : String(error);
  return new KeelError(code, message ?? text, { cause: error });
}
