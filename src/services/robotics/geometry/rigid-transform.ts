/**
 * A rigid transform (a pose): a rotation followed by a translation. `parent ← child` reads
 * "takes points expressed in the child frame to the parent frame", as in ROS tf2.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  conjugateQuaternion,
  IDENTITY_QUATERNION,
  multiplyQuaternions,
  normaliseQuaternion,
  type Quaternion,
  quaternionFromYaw,
  rotateVector,
  slerpQuaternions,
} from './quaternion.ts';
import { isFiniteVector, lerpVectors, type Vector3, ZERO_VECTOR } from './vector3.ts';

/** A rotation (unit quaternion) then a translation, in metres. */
export interface RigidTransform {
  readonly translation: Vector3;
  readonly rotation: Quaternion;
}

/** A planar pose: position in metres, heading (yaw about +z) in radians. */
export interface Pose2D {
  readonly x: number;
  readonly y: number;
  readonly yaw: number;
}

/** The transform that changes nothing. */
export const IDENTITY_TRANSFORM: RigidTransform = Object.freeze({
  translation: ZERO_VECTOR,
  rotation: IDENTITY_QUATERNION,
});

/**
 * Makes a transform, normalising the rotation.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` when a component is not finite or the rotation is
 * the zero quaternion.
 * @example
 * ```ts
 * const laserOnBase = rigidTransform({ x: 0.2, y: 0, z: 0.3 }, IDENTITY_QUATERNION);
 * ```
 */
export function rigidTransform(translation: Vector3, rotation: Quaternion): RigidTransform {
  if (!isFiniteVector(translation)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'a transform needs a finite translation', {
      details: { translation },
    });
  }
  return {
    translation: { x: translation.x, y: translation.y, z: translation.z },
    rotation: normaliseQuaternion(rotation),
  };
}

/**
 * The planar pose `(x, y, yaw)` as a transform (z = 0, rotation about +z only).
 *
 * @example
 * ```ts
 * const odomToBase = planarTransform(1.5, -0.2, Math.PI / 2);
 * ```
 */
export function planarTransform(x: number, y: number, yaw: number): RigidTransform {
  return rigidTransform({ x, y, z: 0 }, quaternionFromYaw(yaw));
}

/**
 * The composition `outer ∘ inner`: apply `inner` first. With `outer = a ← b` and
 * `inner = b ← c` the result is `a ← c`.
 *
 * @example
 * ```ts
 * const worldToLaser = composeTransforms(worldToBase, baseToLaser);
 * ```
 */
export function composeTransforms(outer: RigidTransform, inner: RigidTransform): RigidTransform {
  const rotated = rotateVector(outer.rotation, inner.translation);
  return {
    translation: {
      x: outer.translation.x + rotated.x,
      y: outer.translation.y + rotated.y,
      z: outer.translation.z + rotated.z,
    },
    rotation: multiplyQuaternions(outer.rotation, inner.rotation),
  };
}

/**
 * The inverse: from `a ← b`, `b ← a`.
 *
 * @example
 * ```ts
 * composeTransforms(transform, inverseTransform(transform)); // ≈ IDENTITY_TRANSFORM
 * ```
 */
export function inverseTransform(transform: RigidTransform): RigidTransform {
  const rotation = conjugateQuaternion(transform.rotation);
  const translation = rotateVector(rotation, transform.translation);
  return { translation: { x: -translation.x, y: -translation.y, z: -translation.z }, rotation };
}

/**
 * Applies the transform to a point: `rotation · point + translation`.
 *
 * @example
 * ```ts
 * const inWorld = applyTransform(worldToLaser, { x: 3, y: 0, z: 0 });
 * ```
 */
export function applyTransform(transform: RigidTransform, point: Vector3): Vector3 {
  const rotated = rotateVector(transform.rotation, point);
  return {
    x: rotated.x + transform.translation.x,
    y: rotated.y + transform.translation.y,
    z: rotated.z + transform.translation.z,
  };
}

/**
 * Interpolates between two transforms: the translation linearly, the rotation by slerp.
 *
 * @example
 * ```ts
 * const halfway = interpolateTransforms(before, after, 0.5);
 * ```
 */
export function interpolateTransforms(
  from: RigidTransform,
  to: RigidTransform,
  fraction: number,
): RigidTransform {
  return {
    translation: lerpVectors(from.translation, to.translation, fraction),
    rotation: slerpQuaternions(from.rotation, to.rotation, fraction),
  };
}
