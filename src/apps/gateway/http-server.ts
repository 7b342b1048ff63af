import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import type { TraceContext } from '../../platform/observability/trace-context.ts';
import type { NodeHealth } from '../../runtime/node.ts';

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  readonly maxBodyBytes: number;
  readonly health: () => NodeHealth;
  readonly logger: Logger;
  readonly redactor: SecretRedactor;
  readonly traces: TraceContext;
}

export interface RunningHttpServer extends AsyncDisposable {
  /** e.g. `http://127.0.0.1:7420`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Whether an address only reaches this machine.
 *
 * @example
 * ```ts
 * isLoopback('127.0.0.1'); // true
 * isLoopback('0.0.0.0'); // false
 * ```
 */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

/**
 * The HTTP form of an error: the catalogue's status and `{"error": …}` with secrets redacted.
 *
 * @example
 * ```ts
 * const { status, body } = httpError(new KeelError('KEEL_NOT_FOUND'), redactor); // 404
 * ```
 */
export function httpError(
  error: KeelError,
  redactor: SecretRedactor,
): { readonly status: number; readonly body: string } {
  return { status: error.status, body: redactor.redact(JSON.stringify({ error: error.toJSON() })) };
}

function listenError(error: unknown, host: string, port: number): KeelError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new KeelError('KEEL_PORT_IN_USE', `port ${port} on ${host} is already in use`, {
      cause: error,
    });
  }
  if (code === 'EACCES') {
    return new KeelError('KEEL_CONFIG_INVALID', `no permission to listen on ${host}:${port}`, {
      cause: error,
      hint: 'use a port above 1023, or 0 for a free one',
    });
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new KeelError('KEEL_CONFIG_INVALID', `${host} is not an address of this machine`, {
      cause: error,
      hint: 'use --host 127.0.0.1, or an address this machine has',
    });
  }
  return new KeelError('KEEL_INTERNAL', `cannot listen on ${host}:${port}`, { cause: error });
}

/**
 * The node's HTTP listener: `GET /health/live` (the process answers) and `GET /health/ready`
 * (200 only when every component is ready, else 503), with typed JSON errors, a body-size cap,
 * W3C trace context, and TLS 1.2+ — required on any non-loopback address.
 *
 * @example
 * ```ts
 * const server = await startHttpServer({ host: '127.0.0.1', port: 0, tls: null, maxBodyBytes: 1 << 20, health: () => node.health(), logger, redactor, traces });
 * console.log(server.url);
 * ```
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  if (options.tls === null && !isLoopback(options.host)) {
    throw new KeelError(
      'KEEL_TLS_REQUIRED',
      `refusing to serve plain HTTP on ${options.host}, which is not loopback`,
    );
  }
  const https =
    options.tls === null
      ? null
      : {
          cert: await readFile(options.tls.certFile),
          key: await readFile(options.tls.keyFile),
          minVersion: 'TLSv1.2' as const,
        };
  const logger = options.logger.child({ component: 'http' });
  const app: FastifyInstance = Fastify({
    ...(https === null ? {} : { https }),
    logger: false,
    bodyLimit: options.maxBodyBytes,
    forceCloseConnections: true,
    return503OnClosing: true,
    requestTimeout: 30_000,
  });

  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.traceparent;
    const ids = options.traces.fromTraceparent(typeof header === 'string' ? header : undefined);
    options.traces.enter(ids);
    reply.header('traceparent', options.traces.toTraceparent(ids));
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', 'no-store');
  });

  app.setErrorHandler(async (error, request, reply) => {
    let keelError: KeelError;
    if (isKeelError(error)) keelError = error;
    else if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      keelError = new KeelError(
        'KEEL_PAYLOAD_TOO_LARGE',
        `the request body is larger than ${options.maxBodyBytes} bytes`,
        {
          details: { limit: options.maxBodyBytes },
        },
      );
    } else if (
      (error as { statusCode?: number }).statusCode === 400 ||
      (error as { validation?: unknown }).validation !== undefined
    ) {
      keelError = new KeelError('KEEL_INVALID_ARGUMENT', 'the request is not valid', {
        details: { reason: error instanceof Error ? error.message : String(error) },
      });
    } else {
      keelError = new KeelError('KEEL_INTERNAL', 'an internal error occurred', { cause: error });
      logger.error({ err: error, url: request.url, method: request.method }, 'request failed');
    }
    const response = httpError(keelError, options.redactor);
    await reply.status(response.status).type('application/json').send(response.body);
  });

  app.setNotFoundHandler(async (request, reply) => {
    const error = new KeelError(
      'KEEL_NOT_FOUND',
      `no route ${request.method} ${request.url.split('?')[0]}`,
    );
    const response = httpError(error, options.redactor);
    await reply.status(response.status).type('application/json').send(response.body);
  });

  app.get('/health/live', async () => ({ status: 'live' }));

  app.get('/health/ready', async (_request, reply) => {
    const health = options.health();
    await reply.status(health.ready ? 200 : 503).send({
      status: health.ready ? 'ready' : 'not-ready',
      components: health.components,
    });
  });

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close();
    throw listenError(error, options.host, options.port);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host =
    options.host.includes(':') && !options.host.startsWith('[')
      ? `[${options.host}]`
      : options.host;
  const url = `${https === null ? 'http' : 'https'}://${host}:${port}`;
  logger.debug({ url }, 'listening');
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= app.close();
    return closed;
  };
  return { url, port, close, [Symbol.asyncDispose]: close };
}
