/**
 * The collision query of the motion safety kernel: if the robot holds a velocity command for
 * the next few seconds, does its footprint hit anything in the occupancy map, and when?
 *
 * The command is followed exactly (a constant-velocity arc, or a line when the turn rate is
 * zero, or a turn on the spot), sampled so that no point of the footprint moves more than half
 * a voxel (or half the footprint's smallest dimension) between samples. The footprint is
 * inflated by the safety margin plus half that step, so the samples together cover the
 * continuous sweep: the check is conservative, never optimistic. Voxels count as the cubes
 * they are (a voxel touching the footprint collides), restricted to the height band.
 *
 * Speed: only columns matter to a ground robot, so the query reads the octree's projection of
 * the height band (occupied columns seen from above, kept current by the octree) rather than
 * its voxels: a 2 m wall is one candidate per column, not forty. The samples are taken in
 * chunks; each chunk asks the projection once for the columns in the box around that stretch
 * of the path (its mask levels prune everything else), then tests the few candidates against
 * each pose in time order, stopping at the first hit.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Pose2D } from '../geometry/rigid-transform.ts';
import type { Vector3 } from '../geometry/vector3.ts';
import type { OccupancyOctree } from './occupancy-octree.ts';

/** The robot's outline seen from above, centred on its base frame (length along +x). */
export type Footprint =
  | { readonly kind: 'circle'; readonly radius: number }
  | { readonly kind: 'rectangle'; readonly length: number; readonly width: number };

/** A base velocity command: forward speed (m/s, negative reverses) and turn rate (rad/s). */
export interface VelocityCommand {
  readonly linear: number;
  readonly angular: number;
}

export interface SweptFootprintOptions {
  readonly footprint: Footprint;
  /** Only voxels overlapping this height band (metres, map frame) are obstacles. */
  readonly heightBand: { readonly zMin: number; readonly zMax: number };
  /** Extra clearance kept around the footprint, in metres. */
  readonly safetyMargin: number;
  /** The most poses one query samples; longer sweeps use coarser steps (and inflate more). Default 4096. */
  readonly maxSamples?: number;
}

export interface SweptCollisionQuery {
  readonly start: Pose2D;
  readonly command: VelocityCommand;
  /** How far ahead to look, in seconds (0..60). */
  readonly horizonSeconds: number;
}

/** The first collision along the sweep. */
export interface SweptCollision {
  /**
   * When, from the start of the command: a lower bound, at most one sampling step (half a
   * voxel of travel) before the inflated footprint's first contact, never after it.
   */
  readonly timeSeconds: number;
  /** How far the base has travelled by then (0 for a turn on the spot). */
  readonly distanceMeters: number;
  /** The centre of the voxel hit (the nearest to the base among those hit at that time). */
  readonly obstacle: Vector3;
  /** The pose at `timeSeconds`. */
  readonly pose: Pose2D;
}

const MAX_HORIZON_SECONDS = 60;
const DEFAULT_MAX_SAMPLES = 4096;
/** Poses tested against one box query's candidates. */
const CHUNK_SAMPLES = 16;
const STRAIGHT_TURN_RATE = 1e-9;

function invalid(message: string, details: Record<string, unknown>): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, { details });
}

function checkFinite(values: Record<string, number>): void {
  for (const [name, value] of Object.entries(values)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw invalid(`${name} must be a finite number`, { [name]: value });
    }
  }
}

/**
 * Checks a robot's swept footprint against an occupancy map.
 *
 * @example
 * ```ts
 * const sweep = new SweptFootprint({
 *   footprint: { kind: 'rectangle', length: 0.6, width: 0.4 },
 *   heightBand: { zMin: 0.05, zMax: 1.2 },
 *   safetyMargin: 0.05,
 * });
 * const hit = sweep.firstCollision(map, {
 *   start: { x: 0, y: 0, yaw: 0 },
 *   command: { linear: 0.5, angular: 0.2 },
 *   horizonSeconds: 2,
 * });
 * if (hit !== undefined && hit.timeSeconds < 1) stop();
 * ```
 */
export class SweptFootprint {
  readonly footprint: Footprint;
  readonly heightBand: { readonly zMin: number; readonly zMax: number };
  readonly safetyMargin: number;
  readonly #maxSamples: number;
  /** The radius of the circle around the base that holds the whole footprint. */
  readonly #boundingRadius: number;
  readonly #smallestDimension: number;
  #candidateX = new Float64Array(256);
  #candidateY = new Float64Array(256);
  #candidateCount = 0;

  constructor(options: SweptFootprintOptions) {
    const { footprint, heightBand, safetyMargin } = options;
    if (footprint.kind === 'circle') {
      checkFinite({ radius: footprint.radius });
      if (footprint.radius <= 0)
        throw invalid('a circular footprint needs a positive radius', { footprint });
      this.#boundingRadius = footprint.radius;
      this.#smallestDimension = 2 * footprint.radius;
    } else if (footprint.kind === 'rectangle') {
      checkFinite({ length: footprint.length, width: footprint.width });
      if (footprint.length <= 0 || footprint.width <= 0) {
        throw invalid('a rectangular footprint needs a positive length and width', { footprint });
      }
      this.#boundingRadius = Math.hypot(footprint.length / 2, footprint.width / 2);
      this.#smallestDimension = Math.min(footprint.length, footprint.width);
    } else {
      throw invalid('a footprint is a circle or a rectangle', { footprint });
    }
    checkFinite({ zMin: heightBand.zMin, zMax: heightBand.zMax, safetyMargin });
    if (heightBand.zMin > heightBand.zMax)
      throw invalid('the height band needs zMin ≤ zMax', { heightBand });
    if (safetyMargin < 0) throw invalid('the safety margin cannot be negative', { safetyMargin });
    const maxSamples = options.maxSamples ?? DEFAULT_MAX_SAMPLES;
    if (!Number.isInteger(maxSamples) || maxSamples < 1 || maxSamples > 1_000_000) {
      throw invalid('maxSamples must be an integer from 1 to 1 000 000', { maxSamples });
    }
    this.footprint = Object.freeze({ ...footprint });
    this.heightBand = Object.freeze({ zMin: heightBand.zMin, zMax: heightBand.zMax });
    this.safetyMargin = safetyMargin;
    this.#maxSamples = maxSamples;
  }

  /**
   * The first pose along the commanded motion at which the (inflated) footprint touches an
   * occupied voxel in the height band, or undefined if the sweep stays clear for the horizon.
   *
   * @throws KeelError `KEEL_INVALID_ARGUMENT` for non-finite inputs or a horizon outside 0..60 s.
   * @example
   * ```ts
   * sweep.firstCollision(map, { start: pose, command: { linear: -0.2, angular: 0 }, horizonSeconds: 1.5 });
   * ```
   */
  firstCollision(octree: OccupancyOctree, query: SweptCollisionQuery): SweptCollision | undefined {
    const { start, command, horizonSeconds } = query;
    checkFinite({
      x: start.x,
      y: start.y,
      yaw: start.yaw,
      linear: command.linear,
      angular: command.angular,
      horizonSeconds,
    });
    if (horizonSeconds < 0 || horizonSeconds > MAX_HORIZON_SECONDS) {
      throw invalid(`the horizon must be 0–${MAX_HORIZON_SECONDS} s`, { horizonSeconds });
    }
    const voxelHalf = octree.resolution / 2;
    const spacing = Math.min(octree.resolution, this.#smallestDimension) / 2;
    // The fastest any footprint point moves: the base's speed plus the turn at the rim.
    const pointSpeed = Math.abs(command.linear) + Math.abs(command.angular) * this.#boundingRadius;
    const steps =
      pointSpeed === 0 || horizonSeconds === 0
        ? 0
        : Math.min(this.#maxSamples - 1, Math.ceil((pointSpeed * horizonSeconds) / spacing));
    const stepSeconds = steps === 0 ? 0 : horizonSeconds / steps;
    // Half the distance between neighbouring samples covers every pose in between.
    const inflation = this.safetyMargin + (pointSpeed * stepSeconds) / 2;
    const reach = this.#boundingRadius + inflation + voxelHalf * Math.SQRT2;
    const columns = octree.heightBandProjection(this.heightBand.zMin, this.heightBand.zMax);
    const collect = (x: number, y: number): undefined => {
      this.#addCandidate(x, y);
      return undefined;
    };
    for (let first = 0; first <= steps; first += CHUNK_SAMPLES) {
      const last = Math.min(steps, first + CHUNK_SAMPLES - 1);
      let minX = Number.POSITIVE_INFINITY;
      let minY = Number.POSITIVE_INFINITY;
      let maxX = Number.NEGATIVE_INFINITY;
      let maxY = Number.NEGATIVE_INFINITY;
      for (let sample = first; sample <= last; sample += 1) {
        const pose = poseAt(start, command, sample * stepSeconds);
        minX = Math.min(minX, pose.x);
        minY = Math.min(minY, pose.y);
        maxX = Math.max(maxX, pose.x);
        maxY = Math.max(maxY, pose.y);
      }
      this.#candidateCount = 0;
      columns.visitColumnsInBox(minX - reach, minY - reach, maxX + reach, maxY + reach, collect);
      if (this.#candidateCount === 0) continue;
      for (let sample = first; sample <= last; sample += 1) {
        const hit = this.#nearestTouching(
          poseAt(start, command, sample * stepSeconds),
          inflation,
          voxelHalf,
        );
        if (hit >= 0) {
          // The previous sample was clear with the same inflation, so nothing touched up to
          // half a step after it: report that bound, never a time later than the contact.
          const timeSeconds = Math.max(0, (sample - 0.5) * stepSeconds);
          const pose = poseAt(start, command, timeSeconds);
          return {
            timeSeconds,
            distanceMeters: Math.abs(command.linear) * timeSeconds,
            obstacle: this.#obstacleIn(octree, hit),
            pose,
          };
        }
      }
    }
    return undefined;
  }

  /** The index of the candidate nearest the base among those the footprint touches, or −1. */
  #nearestTouching(pose: Pose2D, inflation: number, voxelHalf: number): number {
    const cosine = Math.cos(pose.yaw);
    const sine = Math.sin(pose.yaw);
    const absoluteCosine = Math.abs(cosine);
    const absoluteSine = Math.abs(sine);
    const footprint = this.footprint;
    let best = -1;
    let bestSquared = Number.POSITIVE_INFINITY;
    for (let index = 0; index < this.#candidateCount; index += 1) {
      const dx = (this.#candidateX[index] as number) - pose.x;
      const dy = (this.#candidateY[index] as number) - pose.y;
      let touches: boolean;
      if (footprint.kind === 'circle') {
        // Circle against the voxel's square: distance from the centre to the square.
        const outsideX = Math.max(Math.abs(dx) - voxelHalf, 0);
        const outsideY = Math.max(Math.abs(dy) - voxelHalf, 0);
        const radius = footprint.radius + inflation;
        touches = outsideX * outsideX + outsideY * outsideY <= radius * radius;
      } else {
        // Separating axes of the inflated rectangle and the voxel's square: world x and y,
        // then the rectangle's own axes.
        const halfLength = footprint.length / 2 + inflation;
        const halfWidth = footprint.width / 2 + inflation;
        const squareReach = voxelHalf * (absoluteCosine + absoluteSine);
        touches =
          Math.abs(dx) <= voxelHalf + halfLength * absoluteCosine + halfWidth * absoluteSine &&
          Math.abs(dy) <= voxelHalf + halfLength * absoluteSine + halfWidth * absoluteCosine &&
          Math.abs(dx * cosine + dy * sine) <= halfLength + squareReach &&
          Math.abs(-dx * sine + dy * cosine) <= halfWidth + squareReach;
      }
      if (!touches) continue;
      const squared = dx * dx + dy * dy;
      if (squared < bestSquared) {
        bestSquared = squared;
        best = index;
      }
    }
    return best;
  }

  /** The lowest occupied voxel in the band in candidate column `index`. */
  #obstacleIn(octree: OccupancyOctree, index: number): Vector3 {
    const x = this.#candidateX[index] as number;
    const y = this.#candidateY[index] as number;
    let z = this.heightBand.zMin;
    octree.visitOccupiedInBox(
      { x, y, z: this.heightBand.zMin },
      { x, y, z: this.heightBand.zMax },
      (_x, _y, voxelZ) => {
        z = voxelZ;
        return true;
      },
    );
    return { x, y, z };
  }

  #addCandidate(x: number, y: number): void {
    if (this.#candidateCount === this.#candidateX.length) {
      const capacity = 2 * this.#candidateX.length;
      const grow = (old: Float64Array) => {
        const grown = new Float64Array(capacity);
        grown.set(old);
        return grown;
      };
      this.#candidateX = grow(this.#candidateX);
      this.#candidateY = grow(this.#candidateY);
    }
    this.#candidateX[this.#candidateCount] = x;
    this.#candidateY[this.#candidateCount] = y;
    this.#candidateCount += 1;
  }
}

/**
 * Where a constant velocity command takes the base after `timeSeconds`: an arc about the
 * instantaneous centre of rotation, or a straight line when the turn rate is zero.
 *
 * @example
 * ```ts
 * poseAt({ x: 0, y: 0, yaw: 0 }, { linear: 1, angular: 0 }, 2); // { x: 2, y: 0, yaw: 0 }
 * ```
 */
export function poseAt(start: Pose2D, command: VelocityCommand, timeSeconds: number): Pose2D {
  const turned = command.angular * timeSeconds;
  if (Math.abs(command.angular) < STRAIGHT_TURN_RATE) {
    const travelled = command.linear * timeSeconds;
    return {
      x: start.x + travelled * Math.cos(start.yaw),
      y: start.y + travelled * Math.sin(start.yaw),
      yaw: start.yaw + turned,
    };
  }
  const turningRadius = command.linear / command.angular;
  const yaw = start.yaw + turned;
  return {
    x: start.x + turningRadius * (Math.sin(yaw) - Math.sin(start.yaw)),
    y: start.y - turningRadius * (Math.cos(yaw) - Math.cos(start.yaw)),
    yaw,
  };
}
