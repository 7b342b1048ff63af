import { KeelError } from '../errors/keel-error.ts';

const REDACTED = '[REDACTED]';
const MINIMUM_SECRET_LENGTH = 4;

function escapeForRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Replaces every occurrence of known secret values in text with `[REDACTED]`, including their
 * JSON-escaped forms (a secret with a quote or backslash inside a JSON log line). Applied to
 * every log line and every error Keel prints or returns.
 *
 * @example
 * ```ts
 * const redactor = new SecretRedactor(['sk-live-123456']);
 * redactor.redact('calling with sk-live-123456'); // 'calling with [REDACTED]'
 * ```
 */
export class SecretRedactor {
  readonly #pattern: RegExp | undefined;

  constructor(secretValues: Iterable<string>) {
    const variants = new Set<string>();
    for (const value of secretValues) {
      if (value.length < MINIMUM_SECRET_LENGTH) continue;
      const escaped = JSON.stringify(value).slice(1, -1);
      variants.add(value);
      variants.add(escaped);
      // JSON inside a JSON string (a request body logged as text) is escaped twice.
      variants.add(JSON.stringify(escaped).slice(1, -1));
    }
    const alternatives = [...variants]
      .sort((left, right) => right.length - left.length)
      .map(escapeForRegex);
    this.#pattern = alternatives.length === 0 ? undefined : new RegExp(alternatives.join('|'), 'g');
  }

  /** The text with every secret replaced. */
  redact(text: string): string {
    return this.#pattern === undefined ? text : text.replace(this.#pattern, REDACTED);
  }

  /**
   * A JSON object with every secret replaced in its text (keys included); the same object
   * when this redactor knows no secret or the text holds none.
   */
  redactJson<T extends Readonly<Record<string, unknown>>>(value: T): T {
    if (this.#pattern === undefined) return value;
    const text = JSON.stringify(value);
    const redacted = this.redact(text);
    return redacted === text ? value : (JSON.parse(redacted) as T);
  }

  /**
   * The error with every secret removed from its message, hint and details (and its cause
   * dropped, which may quote one too); the same error when it holds none.
   */
  redactError(error: KeelError): KeelError {
    const details = JSON.stringify(error.details);
    if (!this.contains(error.message) && !this.contains(details) && !this.contains(error.hint)) {
      return error;
    }
    return new KeelError(error.code, this.redact(error.message), {
      details: JSON.parse(this.redact(details)) as Record<string, unknown>,
      hint: this.redact(error.hint),
      retryable: error.retryable,
      ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    });
  }

  /** Whether the text contains a secret (used by tests and by guards before output). */
  contains(text: string): boolean {
    if (this.#pattern === undefined) return false;
    this.#pattern.lastIndex = 0;
    const found = this.#pattern.test(text);
    this.#pattern.lastIndex = 0;
    return found;
  }
}
