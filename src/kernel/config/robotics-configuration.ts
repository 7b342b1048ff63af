import { z } from 'zod';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { LogLevel } from '../../platform/observability/logger.ts';

const finite = z.number().finite();
const positive = finite.positive();
const point3 = z.strictObject({ x: finite, y: finite, z: finite });

/** `[robotics.safety]`: the motion safety kernel's limits (a grant can only narrow them). */
const SafetySection = z.strictObject({
  max_linear: positive.default(0.8),
  max_angular: positive.default(1.5),
  max_linear_acceleration: positive.default(1),
  max_angular_acceleration: positive.default(3),
  acceleration_window_seconds: positive.default(0.5),
  workspace_min: point3.default({ x: -0.5, y: -0.5, z: 0 }),
  workspace_max: point3.default({ x: 0.5, y: 0.5, z: 0.8 }),
  /** The polygon the base must stay inside, `[[x, y], …]` in the world frame. */
  geofence: z
    .array(z.tuple([finite, finite]))
    .min(3)
    .max(1000)
    .optional(),
  collision_horizon_seconds: positive.max(60).default(1.5),
  footprint_radius: positive.default(0.25),
  safety_margin: finite.nonnegative().default(0.05),
  manual_override_ms: z.number().int().positive().max(3_600_000).default(5000),
});

/** `[robotics.mqtt]`: telemetry out and intents in, through the gate as one agent. */
const MqttSection = z.strictObject({
  url: z
    .string()
    .regex(
      /^mqtts?:\/\/[^\s@/]+(:\d+)?\/?$/,
      'mqtt://host:port or mqtts://host:port, no credentials',
    ),
  /** Default `keel/robots/<robot_id>`. */
  topic_prefix: z.string().min(1).max(200).optional(),
  /** The deployed agent whose identity and grants MQTT commands act with. */
  agent: z.string().min(1).max(64),
  username: z.string().min(1).max(256).optional(),
  /** The name of the secret holding the password (secrets.toml or KEEL_SECRET_…). */
  password_secret: z.string().min(1).max(64).optional(),
  telemetry_interval_ms: z.number().int().min(50).max(60_000).default(500),
});

/** `[robotics]`: the robot body this node drives: the simulator, or a robot behind rosbridge. */
export const RoboticsSection = z.strictObject({
  enabled: z.boolean().default(false),
  /** `sim`: the built-in simulator; `rosbridge`: a ROS robot at `rosbridge_url`. */
  body: z.enum(['sim', 'rosbridge']).default('sim'),
  /** The rosbridge v2 WebSocket of a ROS robot (`ws://` or `wss://`). */
  rosbridge_url: z
    .string()
    .regex(/^wss?:\/\/[^\s@]+$/, 'ws://host:port or wss://host:port, no credentials')
    .optional(),
  /** `/cmd_vel` publications per second to a rosbridge robot. */
  rosbridge_publish_hz: z.number().int().min(1).max(200).default(20),
  /** The drive base's wheel separation, m, and top wheel speed, m/s (rosbridge bodies). */
  wheelbase: positive.default(0.4),
  max_wheel_speed: positive.default(1.5),
  /** The sim world, a JSON file (see docs/robotics.md); absent: the built-in demo yard. */
  world_file: z.string().min(1).max(4096).optional(),
  /** Control loop rate, Hz. */
  rate_hz: z.number().int().min(10).max(1000).default(100),
  /** A velocity command not refreshed within this long is dropped (ms). */
  command_timeout_ms: z.number().int().min(20).max(10_000).default(500),
  /** SCHED_FIFO priority for the control loop thread; 0 leaves it at normal priority. */
  realtime_priority: z.number().int().min(0).max(99).default(40),
  /** The robot's id on the fleet bus and in MQTT topics. */
  robot_id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/)
    .default('rover-1'),
  safety: SafetySection.prefault({}),
  mqtt: MqttSection.optional(),
});

export type RoboticsFile = z.output<typeof RoboticsSection>;

/** The body of a robot behind rosbridge, or the simulator. */
export type RobotBodyConfiguration =
  | { readonly type: 'sim' }
  | {
      readonly type: 'rosbridge';
      readonly url: string;
      readonly publishHz: number;
      readonly wheelbase: number;
      readonly maxWheelSpeed: number;
    };

/** The motion safety kernel's limits, in the shape the rules use. */
export interface MotionSafetySettings {
  readonly maxLinear: number;
  readonly maxAngular: number;
  readonly maxLinearAcceleration: number;
  readonly maxAngularAcceleration: number;
  readonly accelerationWindowSeconds: number;
  readonly workspace: {
    readonly min: { readonly x: number; readonly y: number; readonly z: number };
    readonly max: { readonly x: number; readonly y: number; readonly z: number };
  };
  readonly geofence: ReadonlyArray<{ readonly x: number; readonly y: number }> | undefined;
  readonly collision: {
    readonly horizonSeconds: number;
    readonly footprintRadius: number;
    readonly safetyMargin: number;
    readonly zMin: number;
    readonly zMax: number;
  };
  readonly manualOverrideMs: number;
}

export interface RoboticsConfiguration {
  readonly enabled: boolean;
  readonly body: RobotBodyConfiguration;
  /** The node's log level, for the bridge's I/O thread. */
  readonly bridgeLogLevel: LogLevel;
  readonly worldFile: string | undefined;
  readonly rateHz: number;
  readonly commandTimeoutMs: number;
  readonly realtimePriority: number;
  readonly robotId: string;
  readonly safety: MotionSafetySettings;
  readonly mqtt:
    | {
        readonly url: string;
        readonly topicPrefix: string;
        readonly agent: string;
        readonly username: string | undefined;
        readonly passwordSecret: string | undefined;
        readonly telemetryIntervalMs: number;
      }
    | undefined;
}

/**
 * Converts `[robotics]` to its runtime shape.
 *
 * @example
 * ```ts
 * toRoboticsConfiguration(RoboticsSection.parse({ enabled: true }));
 * ```
 */
export function toRoboticsConfiguration(
  file: RoboticsFile,
  logLevel: RoboticsConfiguration['bridgeLogLevel'] = 'info',
): RoboticsConfiguration {
  const safety = file.safety;
  if (file.body === 'rosbridge' && file.rosbridge_url === undefined) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      'robotics.rosbridge_url is required with body = "rosbridge"',
      {
        details: { field: 'robotics.rosbridge_url' },
      },
    );
  }
  if (file.command_timeout_ms > safety.collision_horizon_seconds * 1000) {
    // A velocity command must not outlive the horizon its collision check looked ahead.
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      'robotics.command_timeout_ms must not exceed robotics.safety.collision_horizon_seconds',
      { details: { field: 'robotics.command_timeout_ms' } },
    );
  }
  return {
    enabled: file.enabled,
    body:
      file.body === 'rosbridge'
        ? {
            type: 'rosbridge',
            url: file.rosbridge_url ?? '',
            publishHz: file.rosbridge_publish_hz,
            wheelbase: file.wheelbase,
            maxWheelSpeed: file.max_wheel_speed,
          }
        : { type: 'sim' },
    bridgeLogLevel: logLevel,
    worldFile: file.world_file,
    rateHz: file.rate_hz,
    commandTimeoutMs: file.command_timeout_ms,
    realtimePriority: file.realtime_priority,
    robotId: file.robot_id,
    safety: {
      maxLinear: safety.max_linear,
      maxAngular: safety.max_angular,
      maxLinearAcceleration: safety.max_linear_acceleration,
      maxAngularAcceleration: safety.max_angular_acceleration,
      accelerationWindowSeconds: safety.acceleration_window_seconds,
      workspace: { min: safety.workspace_min, max: safety.workspace_max },
      geofence: safety.geofence?.map(([x, y]) => ({ x, y })),
      collision: {
        horizonSeconds: safety.collision_horizon_seconds,
        footprintRadius: safety.footprint_radius,
        safetyMargin: safety.safety_margin,
        zMin: 0.02,
        zMax: 1.5,
      },
      manualOverrideMs: safety.manual_override_ms,
    },
    mqtt:
      file.mqtt === undefined
        ? undefined
        : {
            url: file.mqtt.url,
            topicPrefix: file.mqtt.topic_prefix ?? `keel/robots/${file.robot_id}`,
            agent: file.mqtt.agent,
            username: file.mqtt.username,
            passwordSecret: file.mqtt.password_secret,
            telemetryIntervalMs: file.mqtt.telemetry_interval_ms,
          },
  };
}
