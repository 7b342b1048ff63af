/**
 * Unit quaternions for 3D rotations (Hamilton convention, `w` the scalar part), and the yaw
 * helpers that planar robots use most. Values are immutable: every function returns a new one.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Vector3 } from './vector3.ts';

/** A rotation as a unit quaternion `w + xi + yj + zk`. */
export interface Quaternion {
  readonly w: number;
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/** No rotation. */
export const IDENTITY_QUATERNION: Quaternion = Object.freeze({ w: 1, x: 0, y: 0, z: 0 });

/** Below this dot product two rotations are far enough apart for slerp's sine to be stable. */
const SLERP_LINEAR_THRESHOLD = 0.9995;

/**
 * Wraps an angle into (−π, π].
 *
 * @example
 * ```ts
 * wrapAngle(3 * Math.PI / 2); // -Math.PI / 2
 * ```
 */
export function wrapAngle(angle: number): number {
  const wrapped = angle - 2 * Math.PI * Math.floor((angle + Math.PI) / (2 * Math.PI));
  return wrapped === -Math.PI ? Math.PI : wrapped;
}

/**
 * The rotation by `yaw` radians about +z (counter-clockwise seen from above).
 *
 * @example
 * ```ts
 * const facingLeft = quaternionFromYaw(Math.PI / 2);
 * ```
 */
export function quaternionFromYaw(yaw: number): Quaternion {
  return { w: Math.cos(yaw / 2), x: 0, y: 0, z: Math.sin(yaw / 2) };
}

/**
 * The rotation by `angle` radians about `axis` (any non-zero length; it is normalised).
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` when the axis has no direction or is not finite.
 * @example
 * ```ts
 * const pitchedDown = quaternionFromAxisAngle({ x: 0, y: 1, z: 0 }, 0.1);
 * ```
 */
export function quaternionFromAxisAngle(axis: Vector3, angle: number): Quaternion {
  const length = Math.hypot(axis.x, axis.y, axis.z);
  if (!(length > 0) || !Number.isFinite(length) || !Number.isFinite(angle)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      'a rotation axis needs a finite, non-zero direction',
      {
        details: { axis, angle },
      },
    );
  }
  const factor = Math.sin(angle / 2) / length;
  return { w: Math.cos(angle / 2), x: axis.x * factor, y: axis.y * factor, z: axis.z * factor };
}

/**
 * The rotation from roll (about x), then pitch (about y), then yaw (about z), as ROS's
 * `setRPY`.
 *
 * @example
 * ```ts
 * const tilted = quaternionFromRollPitchYaw(0.05, 0, Math.PI);
 * ```
 */
export function quaternionFromRollPitchYaw(roll: number, pitch: number, yaw: number): Quaternion {
  const cr = Math.cos(roll / 2);
  const sr = Math.sin(roll / 2);
  const cp = Math.cos(pitch / 2);
  const sp = Math.sin(pitch / 2);
  const cy = Math.cos(yaw / 2);
  const sy = Math.sin(yaw / 2);
  return {
    w: cr * cp * cy + sr * sp * sy,
    x: sr * cp * cy - cr * sp * sy,
    y: cr * sp * cy + sr * cp * sy,
    z: cr * cp * sy - sr * sp * cy,
  };
}

/**
 * The product `left · right`: the rotation `right` followed by `left`.
 *
 * @example
 * ```ts
 * const half = quaternionFromYaw(Math.PI / 4);
 * yawOf(multiplyQuaternions(half, half)); // Math.PI / 2
 * ```
 */
export function multiplyQuaternions(left: Quaternion, right: Quaternion): Quaternion {
  return {
    w: left.w * right.w - left.x * right.x - left.y * right.y - left.z * right.z,
    x: left.w * right.x + left.x * right.w + left.y * right.z - left.z * right.y,
    y: left.w * right.y - left.x * right.z + left.y * right.w + left.z * right.x,
    z: left.w * right.z + left.x * right.y - left.y * right.x + left.z * right.w,
  };
}

/**
 * The conjugate, which for a unit quaternion is its inverse rotation.
 *
 * @example
 * ```ts
 * const undo = conjugateQuaternion(quaternionFromYaw(0.3)); // yaw −0.3
 * ```
 */
export function conjugateQuaternion(rotation: Quaternion): Quaternion {
  return { w: rotation.w, x: -rotation.x, y: -rotation.y, z: -rotation.z };
}

/**
 * The inverse rotation; correct for quaternions of any non-zero length.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` for the zero quaternion.
 * @example
 * ```ts
 * multiplyQuaternions(rotation, inverseQuaternion(rotation)); // ≈ IDENTITY_QUATERNION
 * ```
 */
export function inverseQuaternion(rotation: Quaternion): Quaternion {
  const squared = rotation.w ** 2 + rotation.x ** 2 + rotation.y ** 2 + rotation.z ** 2;
  if (!(squared > 0)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'the zero quaternion has no inverse', {
      details: { rotation },
    });
  }
  return {
    w: rotation.w / squared,
    x: -rotation.x / squared,
    y: -rotation.y / squared,
    z: -rotation.z / squared,
  };
}

/**
 * The quaternion scaled to length 1 (a rotation again after rounding drift).
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` when it has zero or non-finite length.
 * @example
 * ```ts
 * normaliseQuaternion({ w: 2, x: 0, y: 0, z: 0 }); // IDENTITY_QUATERNION
 * ```
 */
export function normaliseQuaternion(rotation: Quaternion): Quaternion {
  const length = Math.hypot(rotation.w, rotation.x, rotation.y, rotation.z);
  if (!(length > 0) || !Number.isFinite(length)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'a rotation needs a finite, non-zero quaternion', {
      details: { rotation },
    });
  }
  return {
    w: rotation.w / length,
    x: rotation.x / length,
    y: rotation.y / length,
    z: rotation.z / length,
  };
}

/**
 * Rotates a vector by a unit quaternion (`q v q*`, expanded to avoid two full products).
 *
 * @example
 * ```ts
 * rotateVector(quaternionFromYaw(Math.PI / 2), { x: 1, y: 0, z: 0 }); // ≈ { x: 0, y: 1, z: 0 }
 * ```
 */
export function rotateVector(rotation: Quaternion, vector: Vector3): Vector3 {
  // t = 2 (q⃗ × v); v' = v + w t + q⃗ × t
  const tx = 2 * (rotation.y * vector.z - rotation.z * vector.y);
  const ty = 2 * (rotation.z * vector.x - rotation.x * vector.z);
  const tz = 2 * (rotation.x * vector.y - rotation.y * vector.x);
  return {
    x: vector.x + rotation.w * tx + (rotation.y * tz - rotation.z * ty),
    y: vector.y + rotation.w * ty + (rotation.z * tx - rotation.x * tz),
    z: vector.z + rotation.w * tz + (rotation.x * ty - rotation.y * tx),
  };
}

/**
 * Spherical linear interpolation along the shorter arc: `from` at 0, `to` at 1, constant
 * angular speed in between.
 *
 * @example
 * ```ts
 * yawOf(slerpQuaternions(quaternionFromYaw(0), quaternionFromYaw(1), 0.25)); // 0.25
 * ```
 */
export function slerpQuaternions(from: Quaternion, to: Quaternion, fraction: number): Quaternion {
  let dot = from.w * to.w + from.x * to.x + from.y * to.y + from.z * to.z;
  // q and −q are the same rotation; flipping one takes the shorter way round.
  const sign = dot < 0 ? -1 : 1;
  dot *= sign;
  let fromWeight: number;
  let toWeight: number;
  if (dot > SLERP_LINEAR_THRESHOLD) {
    fromWeight = 1 - fraction;
    toWeight = fraction;
  } else {
    const angle = Math.acos(dot);
    const sine = Math.sin(angle);
    fromWeight = Math.sin((1 - fraction) * angle) / sine;
    toWeight = Math.sin(fraction * angle) / sine;
  }
  toWeight *= sign;
  return normaliseQuaternion({
    w: from.w * fromWeight + to.w * toWeight,
    x: from.x * fromWeight + to.x * toWeight,
    y: from.y * fromWeight + to.y * toWeight,
    z: from.z * fromWeight + to.z * toWeight,
  });
}

/**
 * The heading (rotation about +z) of a rotation, in (−π, π].
 *
 * @example
 * ```ts
 * yawOf(quaternionFromYaw(-2)); // -2
 * ```
 */
export function yawOf(rotation: Quaternion): number {
  return Math.atan2(
    2 * (rotation.w * rotation.z + rotation.x * rotation.y),
    1 - 2 * (rotation.y * rotation.y + rotation.z * rotation.z),
  );
}

/**
 * The angle in radians (0..π) of the rotation that takes `from` to `to`.
 *
 * @example
 * ```ts
 * angleBetweenQuaternions(quaternionFromYaw(0), quaternionFromYaw(0.5)); // 0.5
 * ```
 */
export function angleBetweenQuaternions(from: Quaternion, to: Quaternion): number {
  // atan2 of the difference's vector and scalar parts stays accurate near 0, where acos does not.
  const difference = multiplyQuaternions(conjugateQuaternion(from), to);
  return (
    2 * Math.atan2(Math.hypot(difference.x, difference.y, difference.z), Math.abs(difference.w))
  );
}
