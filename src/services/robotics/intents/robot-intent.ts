import { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';

/** Longest trajectory an agent may send in one intent. */
export const MAX_TRAJECTORY_POINTS = 256;

const finite = z.number().finite();
const identifier = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, `_`, `.` and `-`');

const DrivePayload = z.strictObject({
  /** Forward speed, m/s (negative drives backwards). */
  linear: finite,
  /** Turn rate, rad/s (positive turns left). */
  angular: finite,
});

const MoveEndEffectorPayload = z.strictObject({ x: finite, y: finite, z: finite });

const FollowTrajectoryPayload = z.strictObject({
  /** Waypoints in the `world` frame, visited in order. */
  points: z
    .array(z.strictObject({ x: finite, y: finite }))
    .min(1)
    .max(MAX_TRAJECTORY_POINTS),
  /** Highest forward speed along the way, m/s. */
  maxSpeed: finite.positive(),
});

const TriggerRelayPayload = z.strictObject({ relayId: identifier, state: z.boolean() });

const AskHumanPayload = z.strictObject({
  question: z.string().min(1).max(2000),
  contextImageId: identifier.optional(),
});

const MessagePeerPayload = z.strictObject({
  robotId: identifier,
  message: z.string().min(1).max(4000),
});

const BroadcastFleetPayload = z.strictObject({ message: z.string().min(1).max(4000) });

const PostTaskPayload = z.strictObject({
  title: z.string().min(1).max(200),
  description: z.string().max(4000),
});

/**
 * A robot intent on the wire: `{action, payload}`. The LLM, the MQTT bridge and the rover
 * agent all speak this form; {@link parseRobotIntent} validates it and
 * {@link robotIntentToSyscall} turns it into the kernel syscall that carries it.
 */
export const RobotIntentSchema = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('Drive'), payload: DrivePayload }),
  z.strictObject({ action: z.literal('MoveEndEffector'), payload: MoveEndEffectorPayload }),
  z.strictObject({ action: z.literal('FollowTrajectory'), payload: FollowTrajectoryPayload }),
  z.strictObject({ action: z.literal('TriggerRelay'), payload: TriggerRelayPayload }),
  z.strictObject({ action: z.literal('AskHuman'), payload: AskHumanPayload }),
  z.strictObject({ action: z.literal('MessagePeer'), payload: MessagePeerPayload }),
  z.strictObject({ action: z.literal('BroadcastFleet'), payload: BroadcastFleetPayload }),
  z.strictObject({ action: z.literal('PostTask'), payload: PostTaskPayload }),
]);

export type RobotIntent = z.output<typeof RobotIntentSchema>;
export type RobotAction = RobotIntent['action'];

/** The names of every robot action, for prompts and `--help`. */
export const ROBOT_ACTIONS: readonly RobotAction[] = RobotIntentSchema.options.map(
  (option) => option.shape.action.value,
);

/**
 * Validates a robot intent from an untrusted source (an LLM, MQTT), or throws
 * `KEEL_INVALID_ARGUMENT` naming the first bad field.
 *
 * @example
 * ```ts
 * const intent = parseRobotIntent({ action: 'Drive', payload: { linear: 0.3, angular: 0 } });
 * ```
 */
export function parseRobotIntent(value: unknown): RobotIntent {
  const result = RobotIntentSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || 'intent';
  throw new KeelError(
    'KEEL_INVALID_ARGUMENT',
    `robot intent ${field}: ${issue?.message ?? 'invalid'}`,
    { details: { field, actions: ROBOT_ACTIONS } },
  );
}

/** Resources of the robot syscalls that do not name something chosen by the agent. */
export const ROBOT_RESOURCES = Object.freeze({
  base: 'base',
  trajectory: 'trajectory',
  arm: 'arm',
  operator: 'operator',
  broadcast: 'broadcast',
  board: 'board',
});

/** A `hal.drive` syscall's parameters, read one way by every part that judges or runs it. */
export type DriveParams =
  | { readonly type: 'velocity'; readonly linear: number; readonly angular: number }
  | {
      readonly type: 'trajectory';
      readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>;
      readonly maxSpeed: number;
    };

/**
 * Reads a `hal.drive` syscall by its resource — `base` takes exactly `{linear, angular}`,
 * `trajectory` exactly `{points, maxSpeed}` with `maxSpeed > 0` — or throws
 * `KEEL_INVALID_ARGUMENT`. The safety rules and the executor both use it, so an intent can
 * never be judged as one thing and run as another.
 *
 * @example
 * ```ts
 * parseDriveParams('base', { linear: 0.2, angular: 0 }); // { type: 'velocity', linear: 0.2, angular: 0 }
 * ```
 */
export function parseDriveParams(
  resource: string,
  params: Readonly<Record<string, unknown>>,
): DriveParams {
  const schema =
    resource === ROBOT_RESOURCES.base
      ? DrivePayload
      : resource === ROBOT_RESOURCES.trajectory
        ? FollowTrajectoryPayload
        : undefined;
  if (schema === undefined) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `hal.drive has no resource ${resource}: base or trajectory`,
    );
  }
  const result = schema.safeParse(params);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `hal.drive ${resource} ${issue?.path.join('.') || 'params'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const data = result.data as Record<string, unknown>;
  return resource === ROBOT_RESOURCES.base
    ? { type: 'velocity', linear: data.linear as number, angular: data.angular as number }
    : {
        type: 'trajectory',
        points: data.points as Array<{ x: number; y: number }>,
        maxSpeed: data.maxSpeed as number,
      };
}

/** The kernel syscall for a robot intent. */
export interface RobotSyscall {
  readonly kind: string;
  readonly resource: string;
  readonly params: Readonly<Record<string, unknown>>;
}

/**
 * Maps an intent to its syscall. The capability is the syscall's kind and resource: a relay
 * is `hal.relay` on the relay's id (the issue's `hal.relay:<id>`), a peer message is
 * `fleet.message` on the peer's id, so a grant's resource pattern narrows both.
 *
 * @example
 * ```ts
 * robotIntentToSyscall({ action: 'TriggerRelay', payload: { relayId: 'lamp', state: true } });
 * // { kind: 'hal.relay', resource: 'lamp', params: { state: true } }
 * ```
 */
export function robotIntentToSyscall(intent: RobotIntent): RobotSyscall {
  switch (intent.action) {
    case 'Drive':
      return { kind: 'hal.drive', resource: ROBOT_RESOURCES.base, params: { ...intent.payload } };
    case 'FollowTrajectory':
      return {
        kind: 'hal.drive',
        resource: ROBOT_RESOURCES.trajectory,
        params: { points: intent.payload.points, maxSpeed: intent.payload.maxSpeed },
      };
    case 'MoveEndEffector':
      return { kind: 'hal.arm', resource: ROBOT_RESOURCES.arm, params: { ...intent.payload } };
    case 'TriggerRelay':
      return {
        kind: 'hal.relay',
        resource: intent.payload.relayId,
        params: { state: intent.payload.state },
      };
    case 'AskHuman':
      return { kind: 'hitl', resource: ROBOT_RESOURCES.operator, params: { ...intent.payload } };
    case 'MessagePeer':
      return {
        kind: 'fleet.message',
        resource: intent.payload.robotId,
        params: { message: intent.payload.message },
      };
    case 'BroadcastFleet':
      return {
        kind: 'fleet.message',
        resource: ROBOT_RESOURCES.broadcast,
        params: { message: intent.payload.message },
      };
    case 'PostTask':
      return {
        kind: 'fleet.tasks',
        resource: ROBOT_RESOURCES.board,
        params: { ...intent.payload },
      };
  }
}
