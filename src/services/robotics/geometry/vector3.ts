/**
 * A point or direction in 3D space, in metres, and the plain functions that combine them.
 * Values are immutable: every function returns a new vector.
 */

/** A point or direction in 3D space (metres, right-handed, z up). */
export interface Vector3 {
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/** The origin, and the zero direction. */
export const ZERO_VECTOR: Vector3 = Object.freeze({ x: 0, y: 0, z: 0 });

/**
 * Makes a vector; `z` defaults to 0 for planar points.
 *
 * @example
 * ```ts
 * const laserMount = vector3(0.2, 0, 0.3);
 * ```
 */
export function vector3(x: number, y: number, z = 0): Vector3 {
  return { x, y, z };
}

/**
 * The sum `left + right`.
 *
 * @example
 * ```ts
 * addVectors(vector3(1, 2, 3), vector3(1, 1, 1)); // { x: 2, y: 3, z: 4 }
 * ```
 */
export function addVectors(left: Vector3, right: Vector3): Vector3 {
  return { x: left.x + right.x, y: left.y + right.y, z: left.z + right.z };
}

/**
 * The difference `left − right` (the direction from `right` to `left`).
 *
 * @example
 * ```ts
 * subtractVectors(vector3(3, 2, 1), vector3(1, 1, 1)); // { x: 2, y: 1, z: 0 }
 * ```
 */
export function subtractVectors(left: Vector3, right: Vector3): Vector3 {
  return { x: left.x - right.x, y: left.y - right.y, z: left.z - right.z };
}

/**
 * `vector` multiplied by `factor`.
 *
 * @example
 * ```ts
 * scaleVector(vector3(1, -2, 0), 2); // { x: 2, y: -4, z: 0 }
 * ```
 */
export function scaleVector(vector: Vector3, factor: number): Vector3 {
  return { x: vector.x * factor, y: vector.y * factor, z: vector.z * factor };
}

/**
 * The dot product.
 *
 * @example
 * ```ts
 * dotVectors(vector3(1, 0, 0), vector3(0, 1, 0)); // 0
 * ```
 */
export function dotVectors(left: Vector3, right: Vector3): number {
  return left.x * right.x + left.y * right.y + left.z * right.z;
}

/**
 * The cross product `left × right` (right-handed).
 *
 * @example
 * ```ts
 * crossVectors(vector3(1, 0, 0), vector3(0, 1, 0)); // { x: 0, y: 0, z: 1 }
 * ```
 */
export function crossVectors(left: Vector3, right: Vector3): Vector3 {
  return {
    x: left.y * right.z - left.z * right.y,
    y: left.z * right.x - left.x * right.z,
    z: left.x * right.y - left.y * right.x,
  };
}

/**
 * The Euclidean length.
 *
 * @example
 * ```ts
 * vectorLength(vector3(3, 4, 0)); // 5
 * ```
 */
export function vectorLength(vector: Vector3): number {
  return Math.hypot(vector.x, vector.y, vector.z);
}

/**
 * The Euclidean distance between two points.
 *
 * @example
 * ```ts
 * distanceBetween(vector3(1, 1, 1), vector3(1, 1, 3)); // 2
 * ```
 */
export function distanceBetween(left: Vector3, right: Vector3): number {
  return Math.hypot(left.x - right.x, left.y - right.y, left.z - right.z);
}

/**
 * The vector scaled to length 1; the zero vector stays zero (it has no direction).
 *
 * @example
 * ```ts
 * normaliseVector(vector3(0, 0, 5)); // { x: 0, y: 0, z: 1 }
 * ```
 */
export function normaliseVector(vector: Vector3): Vector3 {
  const length = vectorLength(vector);
  return length === 0 ? ZERO_VECTOR : scaleVector(vector, 1 / length);
}

/**
 * Linear interpolation: `from` at fraction 0, `to` at fraction 1.
 *
 * @example
 * ```ts
 * lerpVectors(vector3(0, 0, 0), vector3(2, 4, 0), 0.5); // { x: 1, y: 2, z: 0 }
 * ```
 */
export function lerpVectors(from: Vector3, to: Vector3, fraction: number): Vector3 {
  return {
    x: from.x + (to.x - from.x) * fraction,
    y: from.y + (to.y - from.y) * fraction,
    z: from.z + (to.z - from.z) * fraction,
  };
}

/**
 * Whether every component is a finite number.
 *
 * @example
 * ```ts
 * isFiniteVector(vector3(1, Number.NaN, 0)); // false
 * ```
 */
export function isFiniteVector(vector: Vector3): boolean {
  return Number.isFinite(vector.x) && Number.isFinite(vector.y) && Number.isFinite(vector.z);
}
