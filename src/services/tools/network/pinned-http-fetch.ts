/**
 * HTTP(S) fetching that cannot be turned against the node's own network (SSRF). Each hop's URL
 * is checked by the address policy, its host name is resolved exactly once, every resolved
 * address is checked, and the connection goes to that very address: the socket's `lookup`
 * answers with the pinned address only, so a DNS answer that changes between the check and the
 * connection (rebinding) cannot redirect it, while TLS still verifies the certificate and sends
 * SNI for the host name. Redirects are followed by hand and every new URL is checked from
 * scratch.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { type RequestOptions as HttpsRequestOptions, request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { isKeelError, KeelError } from '../../../platform/errors/keel-error.ts';
import {
  checkResolvedAddresses,
  checkUrl,
  type NetworkRefusal,
  type UrlPolicyOptions,
} from './address-policy.ts';

/** One address a host name resolved to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all of its addresses (injectable for tests and custom DNS). */
export type HostResolver = (host: string) => Promise<readonly ResolvedAddress[]>;

export interface PinnedTargetOptions extends UrlPolicyOptions {
  readonly resolve?: HostResolver | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** A checked URL and the one address its connection must go to. */
export interface PinnedTarget {
  readonly url: URL;
  readonly host: string;
  readonly address: string;
  readonly family: 4 | 6;
}

export interface PinnedFetchRequest extends PinnedTargetOptions {
  readonly url: string;
  readonly method?: 'GET' | 'HEAD' | 'POST' | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Only with POST. */
  readonly body?: string | undefined;
  /** Bytes of body kept; the rest is not read and the connection is closed. */
  readonly maxBytes: number;
  /** Time for the whole exchange, redirects and resolution included. */
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  /** Refuse a redirect to another host than the first URL's (`redirect-host`). */
  readonly sameHostRedirects?: boolean | undefined;
}

export interface PinnedFetchResponse {
  readonly status: number;
  /** A safe subset of the response headers, lower-case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as UTF-8, cut at `maxBytes` (on a character boundary). */
  readonly body: string;
  readonly truncated: boolean;
  readonly finalUrl: string;
  /** The URLs redirected to, in order. */
  readonly redirects: readonly string[];
  /** The IP address the final response came from. */
  readonly address: string;
}

/** Resolves with the operating system's resolver: every address, in the order it gives them. */
const systemResolver: HostResolver = async (host) => {
  const answers = await dnsLookup(host, { all: true, order: 'verbatim' });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
};

function policyError(refusal: NetworkRefusal, extra: Record<string, unknown> = {}): KeelError {
  return new KeelError('KEEL_POLICY_VIOLATION', refusal.reason, {
    details: {
      rule: refusal.rule,
      ...(refusal.host === undefined ? {} : { host: refusal.host }),
      ...(refusal.address === undefined ? {} : { address: refusal.address }),
      ...extra,
    },
  });
}

/** Runs an operation, rejecting with the signal's reason as soon as the signal aborts. */
function untilAborted<Value>(operation: () => Promise<Value>, signal: AbortSignal | undefined) {
  if (signal === undefined) return operation();
  signal.throwIfAborted();
  return new Promise<Value>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    operation().then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Checks a URL, resolves its host once and checks every address, and returns the address to
 * connect to. A policy refusal is a `KEEL_POLICY_VIOLATION` with `details.rule`; nothing is
 * connected here.
 *
 * @example
 * ```ts
 * const target = await resolvePinnedTarget('https://example.org/', {});
 * target.address; // '93.184.215.14'
 * ```
 */
export async function resolvePinnedTarget(
  url: string,
  options: PinnedTargetOptions,
): Promise<PinnedTarget> {
  const checked = checkUrl(url, options);
  if (!checked.ok) throw policyError(checked);
  const family = isIP(checked.host);
  if (checked.literal && (family === 4 || family === 6)) {
    return { url: checked.url, host: checked.host, address: checked.host, family };
  }
  let answers: readonly ResolvedAddress[];
  try {
    const resolve = options.resolve ?? systemResolver;
    answers = await untilAborted(() => resolve(checked.host), options.signal);
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new KeelError('KEEL_EXECUTOR_FAILED', `could not resolve ${checked.host}`, {
      cause: error,
      details: { host: checked.host, reason: errorCode(error) },
    });
  }
  const addresses = Array.isArray(answers)
    ? answers.map((answer: unknown) =>
        typeof answer === 'object' && answer !== null && 'address' in answer
          ? String(answer.address)
          : '',
      )
    : [];
  const verdict = checkResolvedAddresses(addresses, options.allowedAddresses ?? []);
  if (!verdict.ok) throw policyError(verdict, { host: checked.host });
  const address = addresses[0] ?? '';
  return { url: checked.url, host: checked.host, address, family: isIP(address) === 6 ? 6 : 4 };
}

const FORBIDDEN_REQUEST_HEADERS = new Set([
  'host',
  'connection',
  'transfer-encoding',
  'content-length',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'cookie',
  'accept-encoding',
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers not carried to another origin by a redirect. */
const CREDENTIAL_HEADERS = ['authorization'];

/** Lower-cases and checks the caller's request headers; refuses what could smuggle or leak. */
function checkRequestHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const checked: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    const refuse = (reason: string): KeelError =>
      new KeelError('KEEL_POLICY_VIOLATION', `request header ${JSON.stringify(name)} ${reason}`, {
        details: { rule: 'request-header', header: name },
      });
    if (!HEADER_NAME.test(name)) throw refuse('is not a valid header name');
    if (FORBIDDEN_REQUEST_HEADERS.has(lower) || lower.startsWith('proxy-')) {
      throw refuse('is set by the fetcher itself and may not be given');
    }
    if (typeof value !== 'string' || /[\r\n\0]/.test(value)) {
      throw refuse('has a value with CR, LF or NUL');
    }
    if (lower in checked) throw refuse('is given twice');
    checked[lower] = value;
  }
  return checked;
}

function checkLimits(request: PinnedFetchRequest): void {
  const limits = {
    maxBytes: request.maxBytes,
    timeoutMs: request.timeoutMs,
    maxRedirects: request.maxRedirects,
  };
  for (const [field, value] of Object.entries(limits)) {
    // Timers clamp a delay above 2^31 - 1 ms to 1 ms, so that is the longest deadline.
    const [lowest, highest] = field === 'timeoutMs' ? [1, 2_147_483_647] : [0, 2 ** 32];
    if (!Number.isSafeInteger(value) || value < lowest || value > highest) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `${field} must be an integer from ${lowest} to ${highest}`,
        { details: { field } },
      );
    }
  }
  const method = request.method ?? 'GET';
  if (!['GET', 'HEAD', 'POST'].includes(method)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `method ${method} is not supported`, {
      details: { field: 'method' },
    });
  }
  if (request.body !== undefined && method !== 'POST') {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'only a POST request may have a body', {
      details: { field: 'body' },
    });
  }
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error) return String(error.code);
  return error instanceof Error ? error.message : String(error);
}

interface Exchange {
  readonly response: IncomingMessage;
  readonly clientRequest: ClientRequest;
}

/** Sends one request to the pinned address and waits for the response head. */
function exchange(
  target: PinnedTarget,
  method: string,
  headers: Readonly<Record<string, string>>,
  body: string | undefined,
  signal: AbortSignal,
): Promise<Exchange> {
  const lookup: LookupFunction = (hostname, options, callback) => {
    if (hostname !== target.host) {
      callback(new Error(`refusing to look up ${hostname}: pinned to ${target.host}`), '', 4);
    } else if (options.all === true) {
      callback(null, [{ address: target.address, family: target.family }]);
    } else {
      callback(null, target.address, target.family);
    }
  };
  const https = target.url.protocol === 'https:';
  const options: HttpsRequestOptions = {
    protocol: target.url.protocol,
    hostname: target.host,
    port: Number(target.url.port || (https ? 443 : 80)),
    path: `${target.url.pathname}${target.url.search}`,
    method,
    headers: {
      ...headers,
      'accept-encoding': 'identity',
      ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
    },
    agent: false,
    lookup,
    family: target.family,
    signal,
    joinDuplicateHeaders: true,
    minVersion: 'TLSv1.2',
    rejectUnauthorized: true,
  };
  return new Promise((resolve, reject) => {
    const clientRequest = (https ? httpsRequest : httpRequest)(options);
    clientRequest.once('response', (response) => resolve({ response, clientRequest }));
    // Kept for the whole exchange: a late socket error must not go unhandled.
    clientRequest.on('error', reject);
    clientRequest.end(body);
  });
}

/** Reads the body up to `maxBytes`; beyond that it stops reading and closes the connection. */
function readBody(
  { response, clientRequest }: Exchange,
  maxBytes: number,
): Promise<{ body: string; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (truncated: boolean): void => {
      if (settled) return;
      settled = true;
      // A decoder in stream mode holds back a character cut in half at the cap.
      const body = new TextDecoder('utf-8').decode(Buffer.concat(chunks), { stream: truncated });
      resolve({ body, truncated });
    };
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    response.on('data', (chunk: Buffer) => {
      if (settled) return;
      const room = maxBytes - size;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room));
        size = maxBytes;
        finish(true);
        response.destroy();
        clientRequest.destroy();
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    });
    response.once('end', () => finish(false));
    response.on('error', fail);
    response.once('close', () => {
      if (!response.complete) fail(new Error('the connection closed before the response ended'));
    });
  });
}

const RESPONSE_HEADERS = new Set([
  'content-type',
  'content-length',
  'content-language',
  'content-disposition',
  'last-modified',
  'etag',
  'cache-control',
  'expires',
  'date',
  'age',
  'location',
  'retry-after',
  'vary',
]);

function safeHeaders(response: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (!RESPONSE_HEADERS.has(name) || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

const TRANSIENT_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'EAI_AGAIN', 'ETIMEDOUT']);

/** A connection or protocol failure, named with the host and the address it was pinned to. */
function connectionError(error: unknown, target: PinnedTarget): KeelError {
  const reason = errorCode(error);
  return new KeelError(
    'KEEL_EXECUTOR_FAILED',
    `the request to ${target.host} (${target.address}) failed: ${reason}`,
    {
      cause: error,
      retryable: TRANSIENT_ERRORS.has(reason),
      details: { host: target.host, address: target.address, reason },
    },
  );
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

async function follow(
  request: PinnedFetchRequest,
  signal: AbortSignal,
): Promise<PinnedFetchResponse> {
  let url = request.url;
  let method: string = request.method ?? 'GET';
  let body = request.body;
  let headers = checkRequestHeaders(request.headers ?? {});
  const redirects: string[] = [];
  for (;;) {
    signal.throwIfAborted();
    const target = await resolvePinnedTarget(url, {
      allowedDomains: request.allowedDomains,
      allowedAddresses: request.allowedAddresses,
      resolve: request.resolve,
      signal,
    });
    const current = await exchange(target, method, headers, body, signal).catch((error: unknown) =>
      Promise.reject(connectionError(error, target)),
    );
    const status = current.response.statusCode ?? 0;
    const location = current.response.headers.location;
    if (!REDIRECT_STATUSES.has(status) || location === undefined) {
      const read = await readBody(current, request.maxBytes).catch((error: unknown) =>
        Promise.reject(connectionError(error, target)),
      );
      return {
        status,
        headers: safeHeaders(current.response),
        ...read,
        finalUrl: target.url.href,
        redirects,
        address: target.address,
      };
    }
    current.response.destroy();
    current.clientRequest.destroy();
    if (redirects.length >= request.maxRedirects) {
      throw new KeelError('KEEL_POLICY_VIOLATION', `more than ${request.maxRedirects} redirects`, {
        details: { rule: 'redirect-limit', maxRedirects: request.maxRedirects, redirects },
      });
    }
    const next = URL.parse(location, target.url.href);
    if (next === null) {
      throw new KeelError('KEEL_POLICY_VIOLATION', 'a redirect points to an invalid URL', {
        details: { rule: 'redirect-invalid', host: target.host },
      });
    }
    if (request.sameHostRedirects === true && next.hostname !== URL.parse(request.url)?.hostname) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        `a redirect leaves ${target.host} for ${next.hostname}; fetch that URL itself if it is wanted`,
        { details: { rule: 'redirect-host', host: target.host, location: next.hostname } },
      );
    }
    if (next.origin !== target.url.origin) {
      headers = Object.fromEntries(
        Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.includes(name)),
      );
    }
    if (status === 303 ? method !== 'HEAD' : status <= 302 && method === 'POST') {
      method = 'GET';
      body = undefined;
      headers = Object.fromEntries(
        Object.entries(headers).filter(([name]) => name !== 'content-type'),
      );
    }
    redirects.push(next.href);
    url = next.href;
  }
}

/**
 * Fetches a URL over HTTP or HTTPS with every SSRF guard on: the address policy on every hop
 * (scheme, credentials, domain allowlist, local-only names, refused address ranges), one DNS
 * resolution per hop with the connection pinned to the checked address, redirects followed by
 * hand up to `maxRedirects`, the body cut at `maxBytes` while streaming, one deadline for the
 * whole exchange, and no connection pooling, proxies or cookies.
 *
 * Fails with `KEEL_POLICY_VIOLATION` (details `{ rule, host?, address? }`), `KEEL_TIMEOUT`,
 * `KEEL_ABORTED`, `KEEL_INVALID_ARGUMENT` or `KEEL_EXECUTOR_FAILED` (connection errors).
 *
 * @example
 * ```ts
 * const response = await pinnedFetch({
 *   url: 'https://api.example.org/status',
 *   maxBytes: 1_000_000,
 *   timeoutMs: 10_000,
 *   maxRedirects: 3,
 *   allowedDomains: ['*.example.org'],
 * });
 * response.status; // 200
 * ```
 */
export async function pinnedFetch(request: PinnedFetchRequest): Promise<PinnedFetchResponse> {
  checkLimits(request);
  const deadline = AbortSignal.timeout(request.timeoutMs);
  const signal =
    request.signal === undefined ? deadline : AbortSignal.any([request.signal, deadline]);
  try {
    return await follow(request, signal);
  } catch (error) {
    if (request.signal?.aborted) {
      throw new KeelError('KEEL_ABORTED', 'the fetch was aborted', { cause: error });
    }
    if (deadline.aborted) {
      throw new KeelError('KEEL_TIMEOUT', `the fetch took longer than ${request.timeoutMs} ms`, {
        cause: error,
        details: { timeoutMs: request.timeoutMs },
      });
    }
    throw isKeelError(error)
      ? error
      : new KeelError('KEEL_EXECUTOR_FAILED', String(error), { cause: error });
  }
}
