import { z } from 'zod';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../../platform/observability/logger.ts';

/** What a {@link RosbridgeClient} is built from; every number has a default. */
export interface RosbridgeClientOptions {
  /** The rosbridge server, `ws://` or `wss://`, e.g. `ws://robot.local:9090`. */
  readonly url: string;
  readonly logger: Logger;
  /** The ceiling of the first reconnect delay; it doubles per failed attempt. Default 250. */
  readonly initialReconnectDelayMs?: number;
  /** The largest reconnect delay. Default 10 000. */
  readonly maxReconnectDelayMs?: number;
  /** A connection open this long resets the backoff to its first step. Default 5 000. */
  readonly stableConnectionMs?: number;
  /** How long the WebSocket handshake may take. Default 5 000. */
  readonly connectTimeoutMs?: number;
  /**
   * How often to ping; a ping unanswered (and no frame received) by the next one drops the
   * connection, so a dead link is noticed within two intervals. 0 disables. Default 2 000.
   */
  readonly heartbeatIntervalMs?: number;
  /** Incoming frames larger than this are dropped and counted. Default 1 MiB. */
  readonly maxFrameBytes?: number;
  /** Publishing is refused while more than this is waiting in the send buffer. Default 64 KiB. */
  readonly maxBufferedBytes?: number;
  /** How long `close()` waits for the closing handshake before cutting the socket. Default 1 000. */
  readonly closeTimeoutMs?: number;
  /** A number in [0, 1] for the jitter; `Math.random` unless a test fixes it. */
  readonly random?: () => number;
}

/** The options after validation, with defaults filled in. */
export interface RosbridgeClientSettings {
  readonly url: string;
  /** The url without user name or password, for logs. */
  readonly safeUrl: string;
  readonly initialReconnectDelayMs: number;
  readonly maxReconnectDelayMs: number;
  readonly stableConnectionMs: number;
  readonly connectTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxFrameBytes: number;
  readonly maxBufferedBytes: number;
  readonly closeTimeoutMs: number;
  readonly random: () => number;
}

const milliseconds = (fallback: number) =>
  z.number().int().min(0).max(86_400_000).default(fallback);

const numbersSchema = z.object({
  initialReconnectDelayMs: z.number().int().min(1).max(3_600_000).default(250),
  maxReconnectDelayMs: z.number().int().min(1).max(3_600_000).default(10_000),
  stableConnectionMs: milliseconds(5_000),
  connectTimeoutMs: z.number().int().min(1).max(600_000).default(5_000),
  heartbeatIntervalMs: milliseconds(2_000),
  maxFrameBytes: z
    .number()
    .int()
    .min(1_024)
    .max(256 * 1_048_576)
    .default(1_048_576),
  maxBufferedBytes: z
    .number()
    .int()
    .min(0)
    .default(64 * 1_024),
  closeTimeoutMs: z.number().int().min(1).max(60_000).default(1_000),
});

/**
 * Validates the options once, at construction: only `ws://` and `wss://` URLs, sane numbers.
 * Throws `KEEL_INVALID_ARGUMENT` naming the offending field.
 *
 * @example
 * ```ts
 * const settings = readRosbridgeClientSettings({ url: 'ws://127.0.0.1:9090', logger });
 * settings.maxFrameBytes; // 1048576
 * ```
 */
export function readRosbridgeClientSettings(
  options: RosbridgeClientOptions,
): RosbridgeClientSettings {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch (error) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'the rosbridge url is not a URL', {
      details: { field: 'url' },
      cause: error,
    });
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'the rosbridge url must be ws:// or wss://', {
      details: { field: 'url', protocol: url.protocol },
    });
  }
  const { url: _url, logger: _logger, random, ...numbers } = options;
  const parsed = numbersSchema.safeParse(numbers);
  if (!parsed.success) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'invalid rosbridge client options', {
      details: { issues: z.prettifyError(parsed.error) },
    });
  }
  if (parsed.data.maxReconnectDelayMs < parsed.data.initialReconnectDelayMs) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'maxReconnectDelayMs is below the initial delay', {
      details: { field: 'maxReconnectDelayMs' },
    });
  }
  const safe = new URL(url.href);
  safe.username = '';
  safe.password = '';
  return Object.freeze({
    ...parsed.data,
    url: url.href,
    safeUrl: `${safe.origin}${safe.pathname}`,
    random: random ?? Math.random,
  });
}
