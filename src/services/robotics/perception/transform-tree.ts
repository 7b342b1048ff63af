/**
 * A time-stamped tree of coordinate frames, in the manner of ROS tf2: `world → odom →
 * base_link → laser`. Each frame has exactly one parent; each edge holds either one static
 * transform (valid at every time) or a bounded, time-ordered history of `parent ← child`
 * samples. A lookup composes the edges up to the two frames' common ancestor, interpolating
 * every dynamic edge at the requested stamp (linear translation, slerp rotation).
 *
 * It never extrapolates: a stamp past an edge's newest (or before its oldest) sample by more
 * than `extrapolationToleranceMs` is refused; within the tolerance the nearest sample is held.
 * History older than `bufferDurationMs` behind an edge's newest sample is dropped, so memory
 * stays bounded however long the robot runs.
 */
import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  composeTransforms,
  IDENTITY_TRANSFORM,
  interpolateTransforms,
  inverseTransform,
  type RigidTransform,
  rigidTransform,
} from '../geometry/rigid-transform.ts';

export interface TransformTreeOptions {
  /** How much history each dynamic edge keeps behind its newest sample. Default 10 000 ms. */
  readonly bufferDurationMs?: number;
  /** How far beyond an edge's sampled interval a lookup may reach (holding the end sample). Default 20 ms. */
  readonly extrapolationToleranceMs?: number;
  /** A hard cap on samples per edge, whatever their rate. Default 10 000. */
  readonly maxSamplesPerEdge?: number;
}

interface TransformEdge {
  readonly parent: string;
  readonly isStatic: boolean;
  /** Ascending; parallel to `transforms`. One entry for a static edge (its stamp unused). */
  readonly stamps: number[];
  readonly transforms: RigidTransform[];
}

const DEFAULT_BUFFER_DURATION_MS = 10_000;
const DEFAULT_EXTRAPOLATION_TOLERANCE_MS = 20;
const DEFAULT_MAX_SAMPLES_PER_EDGE = 10_000;

function checkFrameId(frameId: string, role: string): void {
  if (typeof frameId !== 'string' || frameId.length === 0 || frameId.length > 256) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `the ${role} frame id must be 1–256 characters`, {
      details: { [role]: frameId },
    });
  }
}

function checkPositiveOption(name: string, value: number, allowZero: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `transform tree option ${name} is out of range`, {
      details: { [name]: value },
    });
  }
  return value;
}

/** Index of the first stamp ≥ `stampMs` (stamps.length when none is). */
function lowerBound(stamps: readonly number[], stampMs: number): number {
  let low = 0;
  let high = stamps.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((stamps[middle] ?? 0) < stampMs) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * A time-stamped transform tree.
 *
 * @example
 * ```ts
 * const tree = new TransformTree();
 * tree.setStatic('base_link', 'laser', rigidTransform({ x: 0.2, y: 0, z: 0.3 }, IDENTITY_QUATERNION));
 * tree.set('odom', 'base_link', planarTransform(1, 0, 0), 1_000);
 * tree.set('world', 'odom', IDENTITY_TRANSFORM, 1_000);
 * const worldFromLaser = tree.lookup('world', 'laser', 1_000); // laser points → world
 * ```
 */
export class TransformTree {
  readonly #edges = new Map<string, TransformEdge>();
  /** How many edges name a frame as parent, so a frame that is only ever a parent is known. */
  readonly #childCounts = new Map<string, number>();
  readonly #bufferDurationMs: number;
  readonly #extrapolationToleranceMs: number;
  readonly #maxSamplesPerEdge: number;

  constructor(options: TransformTreeOptions = {}) {
    this.#bufferDurationMs = checkPositiveOption(
      'bufferDurationMs',
      options.bufferDurationMs ?? DEFAULT_BUFFER_DURATION_MS,
      false,
    );
    this.#extrapolationToleranceMs = checkPositiveOption(
      'extrapolationToleranceMs',
      options.extrapolationToleranceMs ?? DEFAULT_EXTRAPOLATION_TOLERANCE_MS,
      true,
    );
    this.#maxSamplesPerEdge = checkPositiveOption(
      'maxSamplesPerEdge',
      options.maxSamplesPerEdge ?? DEFAULT_MAX_SAMPLES_PER_EDGE,
      false,
    );
  }

  /**
   * Records `parent ← child` at `stampMs`. Samples may arrive out of order; one older than the
   * buffer behind the newest is not kept, and `false` says so.
   *
   * @throws KeelError `KEEL_CONFLICT` when `child` already has another parent, when the edge
   * is static, or when the edge would close a cycle; `KEEL_INVALID_ARGUMENT` for bad ids,
   * stamps or transforms.
   * @example
   * ```ts
   * tree.set('odom', 'base_link', planarTransform(x, y, yaw), odometry.stampMs);
   * ```
   */
  set(parent: string, child: string, transform: RigidTransform, stampMs: number): boolean {
    if (!Number.isFinite(stampMs)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'a transform stamp must be a finite number', {
        details: { parent, child, stampMs },
      });
    }
    const checked = rigidTransform(transform.translation, transform.rotation);
    const edge = this.#edgeFor(parent, child, false);
    const { stamps, transforms } = edge;
    const newest = stamps.at(-1);
    if (newest !== undefined && stampMs < newest - this.#bufferDurationMs) return false;
    const index = lowerBound(stamps, stampMs);
    if (stamps[index] === stampMs) {
      transforms[index] = checked;
    } else {
      stamps.splice(index, 0, stampMs);
      transforms.splice(index, 0, checked);
    }
    const cutoff = (stamps.at(-1) ?? stampMs) - this.#bufferDurationMs;
    const stale = Math.max(lowerBound(stamps, cutoff), stamps.length - this.#maxSamplesPerEdge);
    if (stale > 0) {
      stamps.splice(0, stale);
      transforms.splice(0, stale);
    }
    return true;
  }

  /**
   * Records a static `parent ← child` (a sensor mount), valid at every time; setting it again
   * replaces it.
   *
   * @throws KeelError `KEEL_CONFLICT` when `child` has another parent, a dynamic edge, or the
   * edge would close a cycle.
   * @example
   * ```ts
   * tree.setStatic('base_link', 'laser', rigidTransform({ x: 0.2, y: 0, z: 0.3 }, IDENTITY_QUATERNION));
   * ```
   */
  setStatic(parent: string, child: string, transform: RigidTransform): void {
    const checked = rigidTransform(transform.translation, transform.rotation);
    const edge = this.#edgeFor(parent, child, true);
    edge.stamps[0] = 0;
    edge.transforms[0] = checked;
  }

  /**
   * The transform `target ← source` at `stampMs`: it maps points expressed in `source` into
   * `target`. Works in either direction along the tree.
   *
   * @throws KeelError `KEEL_NOT_FOUND` for an unknown frame or two frames in separate trees;
   * `KEEL_INVALID_ARGUMENT` (details: edge, stamp, sampled interval, tolerance) when an edge
   * would have to extrapolate.
   * @example
   * ```ts
   * const worldFromLaser = tree.lookup('world', 'laser', scan.stampMs);
   * ```
   */
  lookup(targetFrame: string, sourceFrame: string, stampMs: number): RigidTransform {
    if (!Number.isFinite(stampMs)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'a lookup stamp must be a finite number', {
        details: { targetFrame, sourceFrame, stampMs },
      });
    }
    const sourceChain = this.#chainToRoot(sourceFrame);
    const targetChain = this.#chainToRoot(targetFrame);
    const targetDepth = new Map(targetChain.map((frame, index) => [frame, index]));
    const sourceIndex = sourceChain.findIndex((frame) => targetDepth.has(frame));
    if (sourceIndex < 0) {
      throw new KeelError(
        'KEEL_NOT_FOUND',
        `frames ${targetFrame} and ${sourceFrame} are not connected`,
        {
          details: { targetFrame, sourceFrame },
        },
      );
    }
    const ancestor = sourceChain[sourceIndex] ?? sourceFrame;
    const ancestorFromSource = this.#composeUp(sourceChain, sourceIndex, stampMs);
    const ancestorFromTarget = this.#composeUp(
      targetChain,
      targetDepth.get(ancestor) ?? 0,
      stampMs,
    );
    return composeTransforms(inverseTransform(ancestorFromTarget), ancestorFromSource);
  }

  /**
   * Whether {@link lookup} would succeed.
   *
   * @example
   * ```ts
   * if (tree.canTransform('world', scan.frameId, scan.stampMs)) project(scan);
   * ```
   */
  canTransform(targetFrame: string, sourceFrame: string, stampMs: number): boolean {
    try {
      this.lookup(targetFrame, sourceFrame, stampMs);
      return true;
    } catch (error) {
      if (error instanceof KeelError && error.code !== 'KEEL_INTERNAL') return false;
      throw error;
    }
  }

  /**
   * The parent of a frame, or undefined for a root or unknown frame.
   *
   * @example
   * ```ts
   * tree.parentOf('laser'); // 'base_link'
   * ```
   */
  parentOf(frame: string): string | undefined {
    return this.#edges.get(frame)?.parent;
  }

  /**
   * Every known frame.
   *
   * @example
   * ```ts
   * tree.frames(); // ['base_link', 'laser', 'odom', 'world']
   * ```
   */
  frames(): string[] {
    return [...new Set([...this.#edges.keys(), ...this.#childCounts.keys()])].sort();
  }

  /**
   * How many samples an edge holds (1 for a static edge), or 0 for an unknown child.
   *
   * @example
   * ```ts
   * tree.sampleCount('base_link'); // bounded by the buffer duration
   * ```
   */
  sampleCount(child: string): number {
    return this.#edges.get(child)?.stamps.length ?? 0;
  }

  #edgeFor(parent: string, child: string, isStatic: boolean): TransformEdge {
    checkFrameId(parent, 'parent');
    checkFrameId(child, 'child');
    if (parent === child) {
      throw new KeelError('KEEL_CONFLICT', `frame ${child} cannot be its own parent`, {
        details: { parent, child },
      });
    }
    const existing = this.#edges.get(child);
    if (existing !== undefined) {
      if (existing.parent !== parent) {
        throw new KeelError(
          'KEEL_CONFLICT',
          `frame ${child} already has parent ${existing.parent}`,
          {
            details: { child, parent: existing.parent, requestedParent: parent },
          },
        );
      }
      if (existing.isStatic !== isStatic) {
        throw new KeelError(
          'KEEL_CONFLICT',
          `the edge ${parent} ← ${child} is ${existing.isStatic ? 'static' : 'dynamic'}`,
          { details: { parent, child, isStatic: existing.isStatic } },
        );
      }
      return existing;
    }
    for (
      let frame: string | undefined = parent;
      frame !== undefined;
      frame = this.parentOf(frame)
    ) {
      if (frame === child) {
        throw new KeelError(
          'KEEL_CONFLICT',
          `making ${parent} the parent of ${child} closes a cycle`,
          {
            details: { parent, child },
          },
        );
      }
    }
    const edge: TransformEdge = { parent, isStatic, stamps: [], transforms: [] };
    this.#edges.set(child, edge);
    this.#childCounts.set(parent, (this.#childCounts.get(parent) ?? 0) + 1);
    return edge;
  }

  /** The frame, its parent, its grandparent, … up to the root. */
  #chainToRoot(frame: string): string[] {
    if (!this.#edges.has(frame) && !this.#childCounts.has(frame)) {
      throw new KeelError('KEEL_NOT_FOUND', `unknown frame ${frame}`, { details: { frame } });
    }
    const chain = [frame];
    for (let parent = this.parentOf(frame); parent !== undefined; parent = this.parentOf(parent)) {
      chain.push(parent);
    }
    return chain;
  }

  /** `chain[count] ← chain[0]`, composing the first `count` edges at `stampMs`. */
  #composeUp(chain: readonly string[], count: number, stampMs: number): RigidTransform {
    let transform = IDENTITY_TRANSFORM;
    for (let index = 0; index < count; index += 1) {
      const child = chain[index] ?? '';
      const edge = this.#edges.get(child);
      if (edge === undefined) break;
      transform = composeTransforms(this.#sample(child, edge, stampMs), transform);
    }
    return transform;
  }

  #sample(child: string, edge: TransformEdge, stampMs: number): RigidTransform {
    const { stamps, transforms } = edge;
    if (edge.isStatic) return transforms[0] ?? IDENTITY_TRANSFORM;
    const oldest = stamps[0] ?? 0;
    const newest = stamps.at(-1) ?? 0;
    if (
      stampMs < oldest - this.#extrapolationToleranceMs ||
      stampMs > newest + this.#extrapolationToleranceMs
    ) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `looking up ${edge.parent} ← ${child} at ${stampMs} ms would extrapolate beyond ${oldest}..${newest} ms`,
        {
          details: {
            parent: edge.parent,
            child,
            stampMs,
            oldestMs: oldest,
            newestMs: newest,
            toleranceMs: this.#extrapolationToleranceMs,
          },
        },
      );
    }
    if (stampMs <= oldest) return transforms[0] ?? IDENTITY_TRANSFORM;
    if (stampMs >= newest) return transforms.at(-1) ?? IDENTITY_TRANSFORM;
    const after = lowerBound(stamps, stampMs);
    const afterStamp = stamps[after] ?? stampMs;
    const afterTransform = transforms[after] ?? IDENTITY_TRANSFORM;
    if (afterStamp === stampMs) return afterTransform;
    const beforeStamp = stamps[after - 1] ?? afterStamp;
    const beforeTransform = transforms[after - 1] ?? afterTransform;
    return interpolateTransforms(
      beforeTransform,
      afterTransform,
      (stampMs - beforeStamp) / (afterStamp - beforeStamp),
    );
  }
}
