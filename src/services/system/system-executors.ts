import { randomBytes, randomInt } from 'node:crypto';
import type { SyscallExecutor } from '../../kernel/gate/syscall.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';

/**
 * `clock.now`: the time, as a syscall so that a replayed run sees the time it saw first.
 *
 * @example
 * ```ts
 * kernel.registerExecutor(createClockExecutor(clock));
 * ```
 */
export function createClockExecutor(clock: Clock): SyscallExecutor {
  return {
    specificationVersion: 'v1',
    kind: 'clock.now',
    doExecute: async () => ({ value: clock.now() }),
  };
}

const MAX_RANDOM_BYTES = 1024;

/**
 * `random`: cryptographic randomness as a syscall (replays return the same values).
 * Params: `{ bytes: n }` → n random bytes as hex (1–1024), or `{ min, max }` → an integer in
 * [min, max).
 *
 * @example
 * ```ts
 * kernel.registerExecutor(randomExecutor);
 * ```
 */
export const randomExecutor: SyscallExecutor = {
  specificationVersion: 'v1',
  kind: 'random',
  doExecute: async (intent) => {
    const { bytes, min, max } = intent.params;
    if (typeof bytes === 'number') {
      if (!Number.isInteger(bytes) || bytes < 1 || bytes > MAX_RANDOM_BYTES) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `random bytes must be an integer from 1 to ${MAX_RANDOM_BYTES}`,
        );
      }
      return { value: randomBytes(bytes).toString('hex') };
    }
    if (typeof min === 'number' && typeof max === 'number') {
      if (
        !Number.isSafeInteger(min) ||
        !Number.isSafeInteger(max) ||
        max <= min ||
        max - min > 2 ** 48
      ) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          'random needs safe integers min < max, at most 2^48 apart',
        );
      }
      return { value: randomInt(min, max) };
    }
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'random takes { bytes } or { min, max }');
  },
};

const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error']);
const MAX_LOG_MESSAGE = 4096;

/**
 * `log`: an agent writes to the node's log, tagged with its identity (and redacted like every
 * line). Params: `{ level, message, fields? }`.
 *
 * @example
 * ```ts
 * kernel.registerExecutor(logExecutor);
 * ```
 */
export const logExecutor: SyscallExecutor = {
  specificationVersion: 'v1',
  kind: 'log',
  doExecute: async (intent, context) => {
    const { level, message, fields } = intent.params;
    if (typeof level !== 'string' || !LOG_LEVELS.has(level)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'log level must be debug, info, warn or error');
    }
    if (typeof message !== 'string' || message.length > MAX_LOG_MESSAGE) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `log message must be a string of at most ${MAX_LOG_MESSAGE} characters`,
      );
    }
    const extra =
      typeof fields === 'object' && fields !== null && !Array.isArray(fields) ? { fields } : {};
    // One agent log call is one log line: control characters (a newline would forge a
    // second line in pretty output, escape sequences would drive a terminal) are escaped.
    const printable = message.replace(
      /[\p{Cc}\p{Zl}\p{Zp}]/gu,
      (character) => `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
    );
    context.logger[level as 'debug' | 'info' | 'warn' | 'error'](
      { source: 'agent', ...extra },
      printable,
    );
    return { value: null };
  },
};
