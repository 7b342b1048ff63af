import { type Logger as PinoLogger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { SecretRedactor } from './secret-redactor.ts';
import type { TraceContext } from './trace-context.ts';

/** Keel's structured logger (pino). Child loggers carry `component`, `agentId`, `runId`, `seq`. */
export type Logger = PinoLogger;

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** `pretty` for people at a terminal, `json` for machines. */
  readonly format: 'json' | 'pretty';
  /** Applied to every serialised line before it is written. */
  readonly redactor: SecretRedactor;
  readonly traces?: TraceContext;
  /** Where lines go; default standard error, so standard output stays for command results. */
  readonly destination?: NodeJS.WritableStream;
  /** Fields on every line, e.g. `{ node: 'keel' }`. */
  readonly base?: Readonly<Record<string, unknown>>;
}

function summariseBinary(value: unknown, depth = 0): unknown {
  if (ArrayBuffer.isView(value)) return `[${value.constructor.name} ${value.byteLength} bytes]`;
  if (value instanceof ArrayBuffer) return `[ArrayBuffer ${value.byteLength} bytes]`;
  if (depth > 3 || typeof value !== 'object' || value === null || value instanceof Error)
    return value;
  if (Array.isArray(value)) return value.map((item) => summariseBinary(item, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)
    return value;
  const copy: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) copy[key] = summariseBinary(member, depth + 1);
  return copy;
}

/** Keys whose values are secrets wherever they appear one or two levels deep. */
const SENSITIVE_KEYS = [
  'password',
  'passphrase',
  'secret',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'apiKey',
  'api_key',
  'apikey',
  'clientSecret',
  'client_secret',
  'privateKey',
  'private_key',
  'authorization',
  'Authorization',
  'proxy-authorization',
  'x-api-key',
  'X-Api-Key',
  'cookie',
  'Cookie',
  'set-cookie',
  'Set-Cookie',
  'auditKey',
];

/** A redaction path segment: `.key`, or `["key"]` for keys that are not identifiers. */
const member = (key: string): string =>
  /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;

const REDACT_PATHS = SENSITIVE_KEYS.flatMap((key) => [
  member(key).replace(/^\./, ''),
  `*${member(key)}`,
  `*.*${member(key)}`,
]);

/**
 * Creates the node's root logger: structured JSON (or pretty on a terminal), with secrets
 * redacted from every line twice over — by key (`password`, `apiKey`, …) and by value (every
 * secret the node holds, wherever it appears in the text) — and trace ids added when present.
 *
 * @example
 * ```ts
 * const logger = createLogger({ level: 'info', format: 'json', redactor });
 * logger.child({ component: 'gate' }).info({ agentId, runId, seq }, 'syscall allowed');
 * ```
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stderr;
  const stream =
    options.format === 'pretty'
      ? pretty({
          destination,
          colorize: Boolean((destination as { isTTY?: boolean }).isTTY),
          sync: true,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname',
        })
      : destination;
  const traces = options.traces;
  return pino(
    {
      level: options.level,
      base: { ...(options.base ?? {}) },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
      ...(traces === undefined
        ? {}
        : {
            mixin: () => {
              const ids = traces.current();
              return ids === undefined ? {} : { traceId: ids.traceId, spanId: ids.spanId };
            },
          }),
      // Binary values are summarised (their bytes are not log material, and the redaction
      // library cannot walk them).
      formatters: { log: (object) => summariseBinary(object) as Record<string, unknown> },
      hooks: { streamWrite: (line: string) => options.redactor.redact(line) },
    },
    stream,
  );
}
