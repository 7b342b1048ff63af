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

/** Keys whose values are secrets wherever they appear one or two levels deep. */
const SENSITIVE_KEYS = [
  'password',
  'secret',
  'token',
  'apiKey',
  'api_key',
  'authorization',
  'cookie',
  'auditKey',
];

const REDACT_PATHS = [
  ...SENSITIVE_KEYS,
  ...SENSITIVE_KEYS.map((key) => `*.${key}`),
  ...SENSITIVE_KEYS.map((key) => `*.*.${key}`),
  'headers.authorization',
  'request.headers.authorization',
  'request.headers.cookie',
];

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
      hooks: { streamWrite: (line: string) => options.redactor.redact(line) },
    },
    stream,
  );
}
