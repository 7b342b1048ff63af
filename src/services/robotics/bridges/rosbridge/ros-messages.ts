import { z } from 'zod';

/**
 * The ROS message types Keel speaks, as rosbridge names them. The short `package/Type` form is
 * accepted by rosbridge on ROS 1 and ROS 2 alike.
 */
export const ROS_MESSAGE_TYPES = Object.freeze({
  twist: 'geometry_msgs/Twist',
  laserScan: 'sensor_msgs/LaserScan',
  odometry: 'nav_msgs/Odometry',
  transforms: 'tf2_msgs/TFMessage',
});

/** The most beams a laser scan may have; a larger scan is rejected as a whole. */
export const MAX_LASER_SCAN_RANGES = 8_192;

/** The most transforms one `tf2_msgs/TFMessage` may carry. */
export const MAX_TRANSFORMS_PER_MESSAGE = 1_024;

export interface Vector3 {
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/** A unit quaternion (normalised on arrival). */
export interface Quaternion {
  readonly x: number;
  readonly y: number;
  readonly z: number;
  readonly w: number;
}

/** `geometry_msgs/Twist`: metres per second and radians per second, in the body frame. */
export interface Twist {
  readonly linear: Vector3;
  readonly angular: Vector3;
}

/** `sensor_msgs/LaserScan`, with the header flattened to `stampMs` and `frameId`. */
export interface LaserScan {
  /** The header stamp in epoch milliseconds (fractional: nanosecond precision is kept). */
  readonly stampMs: number;
  readonly frameId: string;
  readonly angleMin: number;
  readonly angleMax: number;
  readonly angleIncrement: number;
  readonly rangeMin: number;
  readonly rangeMax: number;
  /**
   * Metres per beam. `NaN` means "no valid reading": rosbridge sends every non-finite float
   * (NaN, +inf "nothing in range", -inf "too close") as `null`, which loses which one it was, so
   * `null` becomes `NaN` and must never be read as free space. A server that sends bare
   * `Infinity` tokens keeps them as `±Infinity` (REP 117 meaning).
   */
  readonly ranges: readonly number[];
}

/** `nav_msgs/Odometry` without the covariances. */
export interface Odometry {
  readonly stampMs: number;
  /** The frame of the pose, usually `odom`. */
  readonly frameId: string;
  /** The frame of the twist, usually `base_link`. */
  readonly childFrameId: string;
  readonly pose: { readonly position: Vector3; readonly orientation: Quaternion };
  readonly twist: Twist;
}

/** One `geometry_msgs/TransformStamped`: where `childFrameId` sits in `parentFrameId`. */
export interface StampedTransform {
  readonly stampMs: number;
  readonly parentFrameId: string;
  readonly childFrameId: string;
  readonly translation: Vector3;
  readonly rotation: Quaternion;
}

const NANOSECONDS_PER_SECOND = 1_000_000_000;

const stampSchema = z
  .union([
    z.object({
      sec: z.number().int().min(0),
      nanosec: z.number().int().min(0).lt(NANOSECONDS_PER_SECOND),
    }),
    z.object({
      secs: z.number().int().min(0),
      nsecs: z.number().int().min(0).lt(NANOSECONDS_PER_SECOND),
    }),
  ])
  .transform((stamp) =>
    'sec' in stamp
      ? stamp.sec * 1_000 + stamp.nanosec / 1_000_000
      : stamp.secs * 1_000 + stamp.nsecs / 1_000_000,
  );

// tf2 drops a leading slash (ROS 1 wrote "/base_link"), so Keel does too: one name per frame.
const frameIdSchema = z
  .string()
  .max(256)
  .transform((frameId) => (frameId.startsWith('/') ? frameId.slice(1) : frameId));

const headerSchema = z.object({ stamp: stampSchema, frame_id: frameIdSchema });

/** A finite `{x, y, z}`; the same on the wire and in Keel. */
export const vector3Schema: z.ZodType<Vector3> = z.object({
  x: z.number(),
  y: z.number(),
  z: z.number(),
});

/** A finite, non-zero quaternion, normalised to unit length. */
export const quaternionSchema: z.ZodType<Quaternion> = z
  .object({ x: z.number(), y: z.number(), z: z.number(), w: z.number() })
  .refine((q) => Math.hypot(q.x, q.y, q.z, q.w) > 1e-9, 'the quaternion has zero length')
  .transform((q) => {
    const length = Math.hypot(q.x, q.y, q.z, q.w);
    return { x: q.x / length, y: q.y / length, z: q.z / length, w: q.w / length };
  });

/**
 * `geometry_msgs/Twist` with finite numbers only; the wire form and Keel's form are the same, so
 * this validates outgoing commands and incoming twists alike.
 *
 * @example
 * ```ts
 * const twist = twistSchema.parse({ linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.5 } });
 * ```
 */
export const twistSchema: z.ZodType<Twist> = z.object({
  linear: vector3Schema,
  angular: vector3Schema,
});

// zod's number() refuses NaN and ±Infinity; a beam may be any float, or null (see LaserScan).
const beamSchema = z
  .custom<number | null>(
    (value) => value === null || typeof value === 'number',
    'expected a number or null',
  )
  .transform((value) => (value === null ? Number.NaN : value));

/**
 * Reads a `sensor_msgs/LaserScan` from rosbridge (header `{sec, nanosec}` or ROS 1
 * `{secs, nsecs}`) into a {@link LaserScan}. Intensities, `time_increment` and `scan_time` are
 * not kept. More than {@link MAX_LASER_SCAN_RANGES} beams is a schema violation.
 *
 * @example
 * ```ts
 * const scan = laserScanSchema.parse(frame.msg);
 * scan.ranges.filter(Number.isFinite);
 * ```
 */
export const laserScanSchema: z.ZodType<LaserScan> = z
  .object({
    header: headerSchema,
    angle_min: z.number(),
    angle_max: z.number(),
    angle_increment: z.number(),
    range_min: z.number().min(0),
    range_max: z.custom<number>(
      (value) => typeof value === 'number' && value >= 0,
      'expected a non-negative number or Infinity',
    ),
    ranges: z.array(beamSchema).max(MAX_LASER_SCAN_RANGES),
  })
  .transform((scan) => ({
    stampMs: scan.header.stamp,
    frameId: scan.header.frame_id,
    angleMin: scan.angle_min,
    angleMax: scan.angle_max,
    angleIncrement: scan.angle_increment,
    rangeMin: scan.range_min,
    rangeMax: scan.range_max,
    ranges: scan.ranges,
  }));

/**
 * Reads a `nav_msgs/Odometry` (pose and twist; covariances are not kept) into an
 * {@link Odometry}. Every number must be finite.
 *
 * @example
 * ```ts
 * const odometry = odometrySchema.parse(frame.msg);
 * odometry.pose.position.x;
 * ```
 */
export const odometrySchema: z.ZodType<Odometry> = z
  .object({
    header: headerSchema,
    child_frame_id: frameIdSchema,
    pose: z.object({
      pose: z.object({ position: vector3Schema, orientation: quaternionSchema }),
    }),
    twist: z.object({ twist: twistSchema }),
  })
  .transform((odometry) => ({
    stampMs: odometry.header.stamp,
    frameId: odometry.header.frame_id,
    childFrameId: odometry.child_frame_id,
    pose: odometry.pose.pose,
    twist: odometry.twist.twist,
  }));

const transformStampedSchema = z
  .object({
    header: headerSchema,
    child_frame_id: frameIdSchema,
    transform: z.object({ translation: vector3Schema, rotation: quaternionSchema }),
  })
  .transform((stamped) => ({
    stampMs: stamped.header.stamp,
    parentFrameId: stamped.header.frame_id,
    childFrameId: stamped.child_frame_id,
    translation: stamped.transform.translation,
    rotation: stamped.transform.rotation,
  }));

/**
 * Reads a `tf2_msgs/TFMessage` (from `/tf` or `/tf_static`) into its list of transforms. One bad
 * transform rejects the whole message, so a consumer never sees half of a batch.
 *
 * @example
 * ```ts
 * for (const transform of transformMessageSchema.parse(frame.msg)) tree.set(transform);
 * ```
 */
export const transformMessageSchema: z.ZodType<readonly StampedTransform[]> = z
  .object({ transforms: z.array(transformStampedSchema).max(MAX_TRANSFORMS_PER_MESSAGE) })
  .transform((message) => message.transforms);

/**
 * The rosbridge `msg` for a `geometry_msgs/Twist`: a plain copy with exactly the ROS fields.
 *
 * @example
 * ```ts
 * client.publish('/cmd_vel', toRosTwist({ linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } }));
 * ```
 */
export function toRosTwist(twist: Twist): {
  linear: { x: number; y: number; z: number };
  angular: { x: number; y: number; z: number };
} {
  const { linear, angular } = twist;
  return {
    linear: { x: linear.x, y: linear.y, z: linear.z },
    angular: { x: angular.x, y: angular.y, z: angular.z },
  };
}
