import { KeelError } from '../../../platform/errors/keel-error.ts';

export interface ArmGeometry {
  /** Height of the shoulder joint above the arm's base, m. */
  readonly shoulderHeight: number;
  /** Upper arm (shoulder → elbow) length, m. */
  readonly upperLength: number;
  /** Forearm (elbow → end effector) length, m. */
  readonly foreLength: number;
}

export interface ArmJoints {
  /** Rotation of the whole arm about the vertical axis, rad. */
  readonly base: number;
  /** Shoulder elevation from the horizontal, rad. */
  readonly shoulder: number;
  /** Elbow bend relative to the upper arm, rad (0 = straight). */
  readonly elbow: number;
}

export interface Point3 {
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/**
 * Inverse kinematics of a three-joint arm: a base yaw joint, then a two-link planar arm
 * (shoulder, elbow) in the vertical plane the yaw selects. Solved in closed form with the
 * law of cosines, elbow up. Throws `KEEL_INVALID_ARGUMENT` for a target out of reach.
 *
 * @example
 * ```ts
 * const joints = solveArmInverseKinematics({ shoulderHeight: 0.1, upperLength: 0.3, foreLength: 0.25 }, { x: 0.3, y: 0.1, z: 0.2 });
 * ```
 */
export function solveArmInverseKinematics(geometry: ArmGeometry, target: Point3): ArmJoints {
  const base = Math.atan2(target.y, target.x);
  const radial = Math.hypot(target.x, target.y);
  const height = target.z - geometry.shoulderHeight;
  const reach = Math.hypot(radial, height);
  const { upperLength, foreLength } = geometry;
  if (reach > upperLength + foreLength || reach < Math.abs(upperLength - foreLength)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      'the end-effector target is out of the arm’s reach',
      {
        details: { target, reach, maxReach: upperLength + foreLength },
      },
    );
  }
  const cosineElbow =
    (reach * reach - upperLength * upperLength - foreLength * foreLength) /
    (2 * upperLength * foreLength);
  // Elbow up: bend negatively so the forearm hangs below the line shoulder → target.
  const elbow = -Math.acos(Math.min(1, Math.max(-1, cosineElbow)));
  const shoulder =
    Math.atan2(height, radial) -
    Math.atan2(foreLength * Math.sin(elbow), upperLength + foreLength * Math.cos(elbow));
  return { base, shoulder, elbow };
}

/**
 * Forward kinematics: where the end effector is for given joint angles.
 *
 * @example
 * ```ts
 * armForwardKinematics(geometry, { base: 0, shoulder: 0, elbow: 0 }); // arm straight out
 * ```
 */
export function armForwardKinematics(geometry: ArmGeometry, joints: ArmJoints): Point3 {
  const radial =
    geometry.upperLength * Math.cos(joints.shoulder) +
    geometry.foreLength * Math.cos(joints.shoulder + joints.elbow);
  const height =
    geometry.upperLength * Math.sin(joints.shoulder) +
    geometry.foreLength * Math.sin(joints.shoulder + joints.elbow);
  return {
    x: radial * Math.cos(joints.base),
    y: radial * Math.sin(joints.base),
    z: geometry.shoulderHeight + height,
  };
}
