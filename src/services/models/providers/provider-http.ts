import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { isKeelError, KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';
import { readBoundedText } from '../http/bounded-body.ts';
import { parseRetryAfter } from '../http/retry-after.ts';
import { parseProviderJson } from './parse-protocol.ts';

export interface ProviderHttpOptions {
  /** The provider's configured name, for errors. */
  readonly providerId: string;
  /** Base URL; `https:` unless the host is loopback. */
  readonly baseUrl: string;
  /** Longest one call may take, headers and body together. */
  readonly timeoutMs: number;
  /** Largest response body (streams count every byte). */
  readonly maxResponseBytes: number;
  /** Sent with every request (API keys among them); never logged or put in errors. */
  readonly headers: Readonly<Record<string, string>>;
}

/** A response with a 2xx status and the deadline that still guards its body. */
export interface ProviderResponse {
  readonly response: Response;
  /** Aborts when the caller aborts or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** Clears the deadline; call it when the body has been read or abandoned. */
  finish(): void;
  /** What a failure while reading the body means, as a KeelError. */
  failure(error: unknown, streaming: boolean): KeelError;
}

const ERROR_BODY_LIMIT = 16_384;
const PROVIDER_MESSAGE_LIMIT = 500;

/**
 * Validates a provider endpoint: `https:` is required unless the host is loopback (a local
 * Ollama or the mock server), and credentials may not be embedded in the URL.
 *
 * @example
 * ```ts
 * assertProviderEndpoint('openai', 'https://api.openai.com/v1'); // ok
 * assertProviderEndpoint('lan', 'http://10.0.0.5:11434'); // throws KEEL_TLS_REQUIRED
 * ```
 */
export function assertProviderEndpoint(providerId: string, baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch (error) {
    throw new KeelError('KEEL_CONFIG_INVALID', `provider ${providerId}: base_url is not a URL`, {
      cause: error,
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `provider ${providerId}: base_url must be http or https, not ${url.protocol}`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `provider ${providerId}: put credentials in a secret (api_key_secret), not in base_url`,
    );
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new KeelError(
      'KEEL_TLS_REQUIRED',
      `provider ${providerId}: ${url.host} is not loopback, so its base_url must use https`,
      { details: { provider: providerId, host: url.host } },
    );
  }
  return url;
}

/** Whether a URL hostname names this machine: localhost, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  // Only the literal name: `*.localhost` may be resolved through DNS to a remote machine.
  if (host.toLowerCase() === 'localhost') return true;
  if (isIP(host) === 4) return host.split('.')[0] === '127';
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * The HTTP side of a provider adapter: one call with a deadline, the caller's signal, a
 * response size cap, and every failure turned into a typed, retry-aware KeelError
 * (`KEEL_PROVIDER_RATE_LIMITED` with `retryAfterMs`, `KEEL_PROVIDER_UNAVAILABLE`,
 * `KEEL_PROVIDER_REJECTED`, `KEEL_TIMEOUT`, `KEEL_ABORTED`).
 *
 * @example
 * ```ts
 * const http = new ProviderHttp({ providerId: 'openai', baseUrl, timeoutMs: 60_000, maxResponseBytes: 8_388_608, headers });
 * const { value } = await http.json('/chat/completions', body, signal);
 * ```
 */
export class ProviderHttp {
  readonly options: ProviderHttpOptions;
  readonly #base: string;
  readonly #transport: typeof http | typeof https;
  readonly #agent: http.Agent;
  readonly #target: { hostname: string; port: string; path: string };

  constructor(options: ProviderHttpOptions) {
    this.options = options;
    const endpoint = assertProviderEndpoint(options.providerId, options.baseUrl);
    this.#base = endpoint.href.replace(/\/+$/, '');
    const secure = endpoint.protocol === 'https:';
    this.#transport = secure ? https : http;
    // Idle connections close before a typical server's 5 s keep-alive would close them.
    const agentOptions = { keepAlive: true, timeout: 4_000 };
    this.#agent = secure
      ? new https.Agent({ ...agentOptions, minVersion: 'TLSv1.2' })
      : new http.Agent(agentOptions);
    this.#target = {
      hostname: endpoint.hostname.replace(/^\[|\]$/g, ''),
      port: endpoint.port,
      path: endpoint.pathname.replace(/\/+$/, ''),
    };
  }

  /** Sends a request and resolves with a 2xx response; anything else throws typed. */
  async request(
    path: string,
    init: {
      readonly method: 'GET' | 'POST';
      readonly body?: unknown;
      readonly signal: AbortSignal;
    },
  ): Promise<ProviderResponse> {
    const { deadline, finish } = this.#deadline();
    const signal = AbortSignal.any([init.signal, deadline]);
    const failure = (error: unknown, streaming: boolean): KeelError =>
      this.#failure(error, init.signal, deadline, streaming);
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, {
        method: init.method,
        headers:
          init.body === undefined
            ? { accept: 'application/json', ...this.options.headers }
            : {
                accept: 'application/json, text/event-stream',
                'content-type': 'application/json',
                ...this.options.headers,
              },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        signal,
        redirect: 'error',
      });
    } catch (error) {
      finish();
      throw failure(error, false);
    }
    if (!response.ok) {
      try {
        throw await this.#statusError(response, signal);
      } finally {
        finish();
      }
    }
    return { response, signal, finish, failure };
  }

  /**
   * A request whose whole body is JSON; returns the parsed value. It goes through `node:http`
   * (`https` for a remote provider) on a keep-alive agent rather than `fetch`, whose WHATWG
   * machinery costs about 0.2 ms more a call; streams keep `request`.
   */
  async json(
    path: string,
    body: unknown,
    signal: AbortSignal,
    method: 'GET' | 'POST' = 'POST',
  ): Promise<unknown> {
    const { deadline, finish } = this.#deadline();
    try {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
      const answer = await this.#exchange(path, method, payload, signal, deadline);
      if (answer.status < 200 || answer.status >= 300) {
        throw this.#statusErrorOf(answer.status, answer.headers, answer.text);
      }
      return parseProviderJson(this.options.providerId, answer.text ?? '', 'body');
    } catch (error) {
      throw this.#failure(error, signal, deadline, false);
    } finally {
      finish();
    }
  }

  /** The call's deadline: a signal that aborts after `timeoutMs`, and `finish` to clear it. */
  #deadline(): { readonly deadline: AbortSignal; finish(): void } {
    const { timeoutMs, providerId } = this.options;
    const controller = new AbortController();
    // A timer cleared when the call ends (AbortSignal.timeout would keep it alive until then).
    const timer = setTimeout(
      () =>
        controller.abort(
          new DOMException(
            `provider ${providerId} took longer than ${timeoutMs} ms`,
            'TimeoutError',
          ),
        ),
      timeoutMs,
    );
    return { deadline: controller.signal, finish: () => clearTimeout(timer) };
  }

  /**
   * One request and its whole answer: a 2xx body up to `maxResponseBytes` (past it the
   * response is dropped and `KEEL_PROVIDER_RESPONSE_TOO_LARGE` thrown), an error body up to
   * 16 KiB (past it, `text` is `undefined`: unreadable). Rejects when either signal aborts.
   */
  #exchange(
    path: string,
    method: 'GET' | 'POST',
    payload: Buffer | undefined,
    callerSignal: AbortSignal,
    deadline: AbortSignal,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; text: string | undefined }> {
    const { maxResponseBytes } = this.options;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        callerSignal.removeEventListener('abort', onAbort);
        deadline.removeEventListener('abort', onAbort);
        outcome();
      };
      const request = this.#transport.request(
        {
          ...this.#target,
          path: `${this.#target.path}${path}`,
          method,
          agent: this.#agent,
          headers: {
            accept: 'application/json',
            ...(payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': payload.length }),
            ...this.options.headers,
          },
        },
        (response) => {
          const status = response.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          const limit = ok ? maxResponseBytes : ERROR_BODY_LIMIT;
          const chunks: Buffer[] = [];
          let total = 0;
          response.on('data', (chunk: Buffer) => {
            total += chunk.length;
            if (total <= limit) {
              chunks.push(chunk);
              return;
            }
            // Settled first: destroying the response reports it as aborted.
            if (ok) {
              settle(() =>
                reject(
                  new KeelError(
                    'KEEL_PROVIDER_RESPONSE_TOO_LARGE',
                    `the provider response exceeded ${maxResponseBytes} bytes`,
                    { details: { limit: maxResponseBytes } },
                  ),
                ),
              );
            } else {
              settle(() => resolve({ status, headers: response.headers, text: undefined }));
            }
            response.destroy();
          });
          response.once('end', () =>
            settle(() =>
              resolve({
                status,
                headers: response.headers,
                text: Buffer.concat(chunks).toString('utf8'),
              }),
            ),
          );
          // The body broke off after the headers: as `readBoundedText` reports a failed read.
          const interrupted = (error: unknown): void =>
            settle(() => reject(toKeelError(error, 'KEEL_PROVIDER_STREAM_INTERRUPTED')));
          response.once('error', interrupted);
          response.once('aborted', () => interrupted(new Error('aborted')));
        },
      );
      const onAbort = (): void => {
        request.destroy();
        settle(() => reject(new KeelError('KEEL_ABORTED', 'the request was aborted')));
      };
      // Before anything can destroy the request: an error with no listener would be thrown
      // by the emitter and take the whole node down.
      request.on('error', (error) => settle(() => reject(error)));
      if (callerSignal.aborted || deadline.aborted) {
        onAbort();
        return;
      }
      callerSignal.addEventListener('abort', onAbort, { once: true });
      deadline.addEventListener('abort', onAbort, { once: true });
      request.end(payload);
    });
  }

  /** The typed error for a non-2xx answer; `text` is the error body, if it could be read. */
  #statusErrorOf(
    status: number,
    headers: IncomingHttpHeaders,
    text: string | undefined,
  ): KeelError {
    const retryHeaders = new Headers();
    const retryAfter = headers['retry-after'];
    if (typeof retryAfter === 'string') retryHeaders.set('retry-after', retryAfter);
    return this.#classify(
      status,
      retryHeaders,
      text === undefined
        ? '(error body unreadable: KEEL_PROVIDER_RESPONSE_TOO_LARGE)'
        : extractProviderMessage(text),
    );
  }

  async #statusError(response: Response, signal: AbortSignal): Promise<KeelError> {
    let providerMessage = '';
    try {
      const text = await readBoundedText(response.body, ERROR_BODY_LIMIT);
      providerMessage = extractProviderMessage(text);
    } catch (error) {
      // The status already says what happened; a body we cannot read only loses the detail.
      providerMessage = signal.aborted ? '' : `(error body unreadable: ${toKeelError(error).code})`;
    }
    return this.#classify(response.status, response.headers, providerMessage);
  }

  #classify(status: number, headers: Headers, providerMessage: string): KeelError {
    const { providerId } = this.options;
    const retryAfterMs = parseRetryAfter(headers, Date.now());
    const details = {
      provider: providerId,
      status,
      ...(providerMessage === '' ? {} : { providerMessage }),
    };
    const suffix = providerMessage === '' ? '' : `: ${providerMessage}`;
    if (status === 429) {
      return new KeelError(
        'KEEL_PROVIDER_RATE_LIMITED',
        `provider ${providerId} is rate limiting (429)${suffix}`,
        { details, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      );
    }
    if (status === 408 || status === 409 || status >= 500) {
      return new KeelError(
        'KEEL_PROVIDER_UNAVAILABLE',
        `provider ${providerId} answered ${status}${suffix}`,
        { details, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      );
    }
    if (status >= 300 && status < 400) {
      return new KeelError(
        'KEEL_PROVIDER_REJECTED',
        `provider ${providerId} answered with a redirect (${status}), which Keel does not follow: set base_url to the address it redirects to`,
        { details },
      );
    }
    return new KeelError(
      'KEEL_PROVIDER_REJECTED',
      `provider ${providerId} rejected the request (${status})${suffix}`,
      { details },
    );
  }

  #failure(
    error: unknown,
    callerSignal: AbortSignal,
    deadline: AbortSignal,
    streaming: boolean,
  ): KeelError {
    const { providerId, timeoutMs } = this.options;
    if (callerSignal.aborted) return toKeelError(callerSignal.reason, 'KEEL_ABORTED');
    if (deadline.aborted) {
      return new KeelError(
        'KEEL_TIMEOUT',
        `provider ${providerId} took longer than ${timeoutMs} ms`,
        { cause: error, details: { provider: providerId, timeoutMs } },
      );
    }
    if (isKeelError(error)) return error;
    const reason = networkReason(error);
    if (streaming) {
      return new KeelError(
        'KEEL_PROVIDER_STREAM_INTERRUPTED',
        `the stream from provider ${providerId} broke off (${reason})`,
        { cause: error, details: { provider: providerId, reason } },
      );
    }
    return new KeelError(
      'KEEL_PROVIDER_UNAVAILABLE',
      `provider ${providerId} could not be reached (${reason})`,
      { cause: error, details: { provider: providerId, reason } },
    );
  }
}

/** The provider's own error message from an error body, bounded. */
function extractProviderMessage(text: string): string {
  let message = text;
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null) {
      const record = value as Record<string, unknown>;
      const error = record.error;
      if (typeof error === 'string') message = error;
      else if (typeof error === 'object' && error !== null) {
        const inner = (error as Record<string, unknown>).message;
        if (typeof inner === 'string') message = inner;
      } else if (typeof record.message === 'string') message = record.message;
    }
  } catch {
    // Not JSON: the text itself is the message.
  }
  message = message.replace(/\s+/g, ' ').trim();
  return message.length > PROVIDER_MESSAGE_LIMIT
    ? `${message.slice(0, PROVIDER_MESSAGE_LIMIT)}…`
    : message;
}

/** A short machine-readable reason for a network failure (`ECONNRESET`, `terminated`…). */
function networkReason(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = current.cause;
  }
  return error instanceof Error ? error.message.slice(0, 80) : 'unknown';
}
