import { z } from 'zod';
import type { Clock } from '../../../../platform/clock/clock.ts';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../../platform/observability/logger.ts';
import type { CommandHandler } from './command-handler.ts';
import type { CommandRefusalListener } from './command-intake.ts';

/** What a {@link MqttRobotBridge} is built from. */
export interface MqttRobotBridgeOptions<Command> {
  /** `mqtt://host:port` or `mqtts://host:port`; credentials go in `username`/`password`. */
  readonly url: string;
  readonly clientId: string;
  /** The robot's topic root, e.g. `keel/robots/arm-1`: no wildcards, no leading `$`. */
  readonly topicPrefix: string;
  readonly username?: string;
  /** A secret: sent to the broker only, never logged. */
  readonly password?: string;
  /** Certificate authorities to trust for `mqtts://` instead of the system's. */
  readonly ca?: string | Buffer;
  /** Validates the `command` of every envelope before the handler sees it. */
  readonly commandSchema: z.ZodType<Command>;
  readonly onCommand: CommandHandler<Command>;
  /** Hears every command the bridge refused itself (stale, malformed, over the backlog…). */
  readonly onRefused?: CommandRefusalListener;
  readonly logger: Logger;
  /** Judges command age; default the system clock. */
  readonly clock?: Clock;
  /** Largest command payload accepted and telemetry or state payload sent; default 64 KiB. */
  readonly maxPayloadBytes?: number;
  /** A command issued longer ago than this is refused as stale; default 2 s. */
  readonly maxCommandAgeMs?: number;
  /** How far in the future `issuedAt` may be before it is refused; default 1 s. */
  readonly maxClockSkewMs?: number;
  /** How many command ids are remembered to refuse redeliveries; default 1024. */
  readonly recentCommandIds?: number;
  /** Commands waiting for the handler beyond this are refused; default 32. */
  readonly maxPendingCommands?: number;
  /** Pause between reconnect attempts; default 1 s. 0 turns reconnecting off. */
  readonly reconnectPeriodMs?: number;
  readonly connectTimeoutMs?: number;
  readonly keepaliveSeconds?: number;
  /** How long `close()` waits for the handler and the last publishes; default 5 s. */
  readonly closeTimeoutMs?: number;
}

/** The topics of one robot under its prefix. */
export interface MqttRobotTopics {
  readonly telemetry: string;
  readonly state: string;
  readonly status: string;
  readonly commands: string;
  readonly commandResults: string;
}

function isControlCharacter(character: string): boolean {
  const code = character.codePointAt(0) ?? 0;
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f);
}

const TOPIC_PREFIX_SCHEMA = z
  .string()
  .min(1)
  .max(200)
  .refine((prefix) => !/[+#]/.test(prefix), 'must not contain the wildcards + or #')
  .refine((prefix) => !prefix.startsWith('$'), 'must not start with $ (reserved for the broker)')
  .refine(
    (prefix) => prefix.split('/').every((level) => level.length > 0),
    'must not start or end with / or contain an empty level',
  )
  .refine((prefix) => ![...prefix].some(isControlCharacter), 'must not contain control characters');

const URL_SCHEMA = z.string().superRefine((text, context) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    context.addIssue({ code: 'custom', message: 'is not a URL' });
    return;
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') {
    context.addIssue({ code: 'custom', message: 'must use mqtt:// or mqtts://' });
  }
  if (url.username !== '' || url.password !== '') {
    context.addIssue({
      code: 'custom',
      message: 'must not carry credentials; pass username and password as options',
    });
  }
  if (url.hostname === '') context.addIssue({ code: 'custom', message: 'must name a host' });
});

const positiveInteger = (fallback: number) => z.number().int().positive().default(fallback);

const SETTINGS_SCHEMA = z.object({
  url: URL_SCHEMA,
  clientId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 of A-Z a-z 0-9 . _ : -'),
  topicPrefix: TOPIC_PREFIX_SCHEMA,
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  maxPayloadBytes: positiveInteger(64 * 1024),
  maxCommandAgeMs: positiveInteger(2_000),
  maxClockSkewMs: z.number().int().nonnegative().default(1_000),
  recentCommandIds: positiveInteger(1024),
  maxPendingCommands: positiveInteger(32),
  reconnectPeriodMs: z.number().int().nonnegative().default(1_000),
  connectTimeoutMs: positiveInteger(10_000),
  keepaliveSeconds: positiveInteger(30),
  closeTimeoutMs: positiveInteger(5_000),
});

/** The checked settings of a bridge, with defaults applied and the topics spelled out. */
export type MqttRobotBridgeSettings = Readonly<z.output<typeof SETTINGS_SCHEMA>> & {
  readonly topics: MqttRobotTopics;
};

/**
 * Validates the bridge's settings once, applies the defaults and derives the topics. A bad
 * value is `KEEL_INVALID_ARGUMENT` naming the field; the password never appears in the error.
 *
 * @example
 * ```ts
 * const settings = resolveMqttRobotBridgeSettings({ url: 'mqtt://127.0.0.1:1883', clientId: 'keel-arm-1', topicPrefix: 'keel/robots/arm-1' });
 * settings.topics.commands; // 'keel/robots/arm-1/commands'
 * ```
 */
export function resolveMqttRobotBridgeSettings(
  options: Omit<
    MqttRobotBridgeOptions<unknown>,
    'commandSchema' | 'onCommand' | 'logger' | 'clock' | 'ca'
  >,
): MqttRobotBridgeSettings {
  const parsed = SETTINGS_SCHEMA.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? '';
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `the MQTT bridge option ${field || '(options)'} ${issue?.message ?? 'is not valid'}`,
      { details: { field } },
    );
  }
  const prefix = parsed.data.topicPrefix;
  return Object.freeze({
    ...parsed.data,
    topics: Object.freeze({
      telemetry: `${prefix}/telemetry`,
      state: `${prefix}/state`,
      status: `${prefix}/status`,
      commands: `${prefix}/commands`,
      commandResults: `${prefix}/command-results`,
    }),
  });
}
