import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/platform/observability/logger.ts';
import { SecretRedactor } from '../../src/platform/observability/secret-redactor.ts';

/** A real logger that writes nothing, for tests and benchmarks that do not look at logs. */
export function silentLogger(): Logger {
  return createLogger({
    level: 'silent',
    format: 'json',
    redactor: new SecretRedactor([]),
    destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
  });
}
