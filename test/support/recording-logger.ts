import { Writable } from 'node:stream';
import {
  createLogger,
  type Logger,
  type LogLevel,
} from '../../src/platform/observability/logger.ts';
import { SecretRedactor } from '../../src/platform/observability/secret-redactor.ts';

/**
 * A real JSON logger at `level` whose lines (one per write) are kept for a test to read.
 *
 * @example
 * ```ts
 * const { lines, logger } = recordingLogger('error');
 * ```
 */
export function recordingLogger(level: LogLevel): {
  readonly lines: string[];
  readonly logger: Logger;
} {
  const lines: string[] = [];
  const logger = createLogger({
    level,
    format: 'json',
    redactor: new SecretRedactor([]),
    destination: new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        lines.push(chunk.toString('utf8'));
        callback();
      },
    }),
  });
  return { lines, logger };
}
