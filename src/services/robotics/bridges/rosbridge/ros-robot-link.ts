import { z } from 'zod';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../../platform/observability/logger.ts';
import {
  type LaserScan,
  laserScanSchema,
  type Odometry,
  odometrySchema,
  ROS_MESSAGE_TYPES,
  type StampedTransform,
  type Twist,
  toRosTwist,
  transformMessageSchema,
  twistSchema,
} from './ros-messages.ts';
import type {
  RosbridgeClient,
  RosbridgeSubscribeOptions,
  RosbridgeSubscription,
} from './rosbridge-client.ts';

/** The ROS topics a {@link RosRobotLink} uses; each has the conventional default. */
export interface RosRobotTopics {
  /** Default `/cmd_vel`. */
  readonly cmdVel?: string;
  /** Default `/scan`. */
  readonly scan?: string;
  /** Default `/odom`. */
  readonly odometry?: string;
  /** Default `/tf`. */
  readonly transforms?: string;
  /** Default `/tf_static` (latched: the fixed frames, such as base_link → laser). */
  readonly staticTransforms?: string;
}

export interface RosRobotLinkOptions {
  /** The client to speak through; the link does not start or close it. */
  readonly client: RosbridgeClient;
  readonly logger: Logger;
  readonly topics?: RosRobotTopics;
  /** Asks rosbridge for at most one scan per this many milliseconds (server-side throttle). */
  readonly scanThrottleMs?: number;
}

const ZERO_TWIST: Twist = Object.freeze({
  linear: Object.freeze({ x: 0, y: 0, z: 0 }),
  angular: Object.freeze({ x: 0, y: 0, z: 0 }),
});

/**
 * The robot as Keel sees it through rosbridge: velocity commands out on `/cmd_vel`
 * (`geometry_msgs/Twist`), and validated, typed laser scans, odometry and transforms in.
 *
 * Commands are never queued (see {@link RosbridgeClient.publish}): `publishCmdVel` throws
 * `KEEL_BRIDGE_UNAVAILABLE` while the link is down, and the control loop decides what to send
 * once it is back. Callbacks receive only messages that passed their schema; the rest are
 * counted in the client's `invalidMessages`.
 *
 * @example
 * ```ts
 * const link = new RosRobotLink({ client, logger });
 * const stop = link.onScan((scan) => perception.addScan(scan));
 * client.start();
 * link.publishCmdVel({ linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } });
 * stop();
 * link.close();
 * ```
 */
export class RosRobotLink {
  readonly #client: RosbridgeClient;
  readonly #logger: Logger;
  readonly #topics: Required<RosRobotTopics>;
  readonly #scanThrottleMs: number | undefined;
  readonly #subscriptions = new Set<RosbridgeSubscription>();
  #closed = false;

  constructor(options: RosRobotLinkOptions) {
    this.#client = options.client;
    this.#logger = options.logger.child({ component: 'ros-robot-link' });
    this.#topics = {
      cmdVel: options.topics?.cmdVel ?? '/cmd_vel',
      scan: options.topics?.scan ?? '/scan',
      odometry: options.topics?.odometry ?? '/odom',
      transforms: options.topics?.transforms ?? '/tf',
      staticTransforms: options.topics?.staticTransforms ?? '/tf_static',
    };
    this.#scanThrottleMs = options.scanThrottleMs;
    this.#client.advertise(this.#topics.cmdVel, ROS_MESSAGE_TYPES.twist);
  }

  /**
   * Sends one velocity command now. Throws `KEEL_INVALID_ARGUMENT` unless every component is a
   * finite number, and `KEEL_BRIDGE_UNAVAILABLE` when the bridge is not connected.
   */
  publishCmdVel(twist: Twist): void {
    this.#requireOpen();
    const parsed = twistSchema.safeParse(twist);
    if (!parsed.success) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'cmd_vel needs finite numbers only', {
        details: { issues: z.prettifyError(parsed.error) },
      });
    }
    this.#client.publish(this.#topics.cmdVel, toRosTwist(parsed.data));
  }

  /** Calls `listener` with every valid laser scan; returns a function that unsubscribes. */
  onScan(listener: (scan: LaserScan) => void): () => void {
    return this.#subscribe({
      topic: this.#topics.scan,
      type: ROS_MESSAGE_TYPES.laserScan,
      schema: laserScanSchema,
      onMessage: listener,
      ...(this.#scanThrottleMs === undefined ? {} : { throttleRateMs: this.#scanThrottleMs }),
      // Only the newest scan matters; an old one waiting in a queue is only latency.
      queueLength: 1,
    });
  }

  /** Calls `listener` with every valid odometry message; returns a function that unsubscribes. */
  onOdometry(listener: (odometry: Odometry) => void): () => void {
    return this.#subscribe({
      topic: this.#topics.odometry,
      type: ROS_MESSAGE_TYPES.odometry,
      schema: odometrySchema,
      onMessage: listener,
    });
  }

  /** Calls `listener` with each valid batch from `/tf`; returns a function that unsubscribes. */
  onTransforms(listener: (transforms: readonly StampedTransform[]) => void): () => void {
    return this.#subscribe({
      topic: this.#topics.transforms,
      type: ROS_MESSAGE_TYPES.transforms,
      schema: transformMessageSchema,
      onMessage: listener,
    });
  }

  /**
   * Calls `listener` with each valid batch from `/tf_static` (sent again by rosbridge on every
   * subscribe, so the tree is whole again after a reconnect); returns a function that unsubscribes.
   */
  onStaticTransforms(listener: (transforms: readonly StampedTransform[]) => void): () => void {
    return this.#subscribe({
      topic: this.#topics.staticTransforms,
      type: ROS_MESSAGE_TYPES.transforms,
      schema: transformMessageSchema,
      onMessage: listener,
    });
  }

  /**
   * Sends a zero twist if connected (best effort: the robot is told to stop before Keel lets go),
   * then unsubscribes everything and withdraws `/cmd_vel`. The client stays open. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#client.state === 'connected') {
      try {
        this.#client.publish(this.#topics.cmdVel, toRosTwist(ZERO_TWIST));
      } catch (error) {
        this.#logger.warn({ err: error }, 'could not send the stopping twist on close');
      }
    }
    this.#closed = true;
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    this.#subscriptions.clear();
    this.#client.unadvertise(this.#topics.cmdVel);
  }

  #subscribe<Message>(options: RosbridgeSubscribeOptions<Message>): () => void {
    this.#requireOpen();
    const subscription = this.#client.subscribe<Message>(options);
    this.#subscriptions.add(subscription);
    return () => {
      subscription.unsubscribe();
      this.#subscriptions.delete(subscription);
    };
  }

  #requireOpen(): void {
    if (this.#closed) {
      throw new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the robot link is closed', {
        hint: 'build a new RosRobotLink',
      });
    }
  }
}
