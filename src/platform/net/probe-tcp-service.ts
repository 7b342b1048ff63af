import { createConnection } from 'node:net';
import { performance } from 'node:perf_hooks';
import { isKeelError, KeelError, toKeelError } from '../errors/keel-error.ts';

/** A TCP service to probe: a name for people, and where it listens. */
export interface TcpServiceTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** The outcome of one probe; an unreachable service is an outcome, not an error. */
export interface TcpServiceProbe extends TcpServiceTarget {
  readonly reachable: boolean;
  /** Time to an established connection, in milliseconds; `null` when not reachable. */
  readonly latencyMs: number | null;
  /** What happened, in one short line: `connected in 0.4 ms`, `connection refused`, … */
  readonly detail: string;
}

export interface ProbeTcpServiceOptions {
  /** How long to wait for the connection. Default 500 ms. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 500;

/**
 * The services a Keel node on this machine kind may use, on their usual loopback ports.
 *
 * @example
 * ```ts
 * const results = await probeTcpServices(DEFAULT_LOCAL_SERVICES);
 * ```
 */
export const DEFAULT_LOCAL_SERVICES: readonly TcpServiceTarget[] = Object.freeze([
  Object.freeze({ name: 'postgres', host: '127.0.0.1', port: 5432 }),
  Object.freeze({ name: 'redis', host: '127.0.0.1', port: 6379 }),
  Object.freeze({ name: 'nats', host: '127.0.0.1', port: 4222 }),
  Object.freeze({ name: 'mqtt', host: '127.0.0.1', port: 1883 }),
]);

/**
 * Opens a TCP connection to a service and closes it again at once, to tell whether something
 * listens there. Never rejects for an unreachable service: the result says `reachable: false`
 * and why. Rejects with `KEEL_INVALID_ARGUMENT` for a bad target or timeout, and with
 * `KEEL_ABORTED` (or `KEEL_TIMEOUT` for a timeout signal) when `signal` aborts.
 *
 * @example
 * ```ts
 * const probe = await probeTcpService({ name: 'postgres', host: '127.0.0.1', port: 5432 });
 * if (!probe.reachable) report(`postgres: ${probe.detail}`); // "connection refused"
 * ```
 */
export async function probeTcpService(
  target: TcpServiceTarget,
  options: ProbeTcpServiceOptions = {},
): Promise<TcpServiceProbe> {
  validateTarget(target);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw invalid('timeoutMs', 'timeoutMs must be a positive number of milliseconds', timeoutMs);
  }
  const { signal } = options;
  if (signal?.aborted === true) throw toKeelError(signal.reason, 'KEEL_ABORTED');
  const { name, host, port } = target;

  return new Promise<TcpServiceProbe>((resolve, reject) => {
    const started = performance.now();
    const socket = createConnection({ host, port });
    let settled = false;

    const finish = (outcome: { latencyMs: number | null; detail: string } | KeelError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (isKeelError(outcome)) {
        reject(outcome);
        return;
      }
      resolve(
        Object.freeze({
          name,
          host,
          port,
          reachable: outcome.latencyMs !== null,
          latencyMs: outcome.latencyMs,
          detail: outcome.detail,
        }),
      );
    };
    const onAbort = (): void => finish(toKeelError(signal?.reason, 'KEEL_ABORTED'));
    const timer = setTimeout(
      () => finish({ latencyMs: null, detail: `timed out after ${timeoutMs} ms` }),
      timeoutMs,
    );

    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      const latencyMs = Math.round((performance.now() - started) * 10) / 10;
      finish({ latencyMs, detail: `connected in ${latencyMs} ms` });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      finish({ latencyMs: null, detail: describeConnectionError(error) });
    });
  });
}

/**
 * Probes several services concurrently; the results keep the order of `targets`.
 *
 * @example
 * ```ts
 * for (const probe of await probeTcpServices(DEFAULT_LOCAL_SERVICES, { timeoutMs: 300 })) {
 *   print(`${probe.name} ${probe.reachable ? 'up' : probe.detail}`);
 * }
 * ```
 */
export async function probeTcpServices(
  targets: readonly TcpServiceTarget[],
  options: ProbeTcpServiceOptions = {},
): Promise<TcpServiceProbe[]> {
  // Validate everything first so that a bad target fails fast, before any connection opens.
  for (const target of targets) validateTarget(target);
  return Promise.all(targets.map((target) => probeTcpService(target, options)));
}

function validateTarget(target: TcpServiceTarget): void {
  if (typeof target.name !== 'string' || target.name.trim() === '') {
    throw invalid('name', 'a service name must be a non-empty string', target.name);
  }
  if (typeof target.host !== 'string' || target.host.trim() === '') {
    throw invalid('host', `host of ${target.name} must be a non-empty string`, target.host);
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw invalid('port', `port of ${target.name} must be an integer 1–65535`, target.port);
  }
}

function invalid(field: string, message: string, received: unknown): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, {
    details: { field, received: typeof received === 'number' ? received : String(received) },
  });
}

const CONNECTION_ERRORS: Readonly<Record<string, string>> = Object.freeze({
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed for now',
  ETIMEDOUT: 'timed out in the kernel',
});

function describeConnectionError(error: NodeJS.ErrnoException): string {
  // Trying several addresses of one name ends in an AggregateError whose parts carry the codes.
  const first: unknown = error instanceof AggregateError ? error.errors[0] : undefined;
  const code = error.code ?? (first as NodeJS.ErrnoException | undefined)?.code ?? '';
  return CONNECTION_ERRORS[code] ?? (code === '' ? error.message : `${code}: ${error.message}`);
}
