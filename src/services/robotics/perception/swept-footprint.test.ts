import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Pose2D } from '../geometry/rigid-transform.ts';
import type { Vector3 } from '../geometry/vector3.ts';
import { OccupancyOctree } from './occupancy-octree.ts';
import { type Footprint, poseAt, SweptFootprint, type VelocityCommand } from './swept-footprint.ts';

const ORIGIN: Pose2D = { x: 0.0125, y: 0.0125, yaw: 0 };
const BAND = { zMin: 0.05, zMax: 1.2 };

/** A map with a post of occupied voxels from z 0.1 to 1.0 m at each (x, y). */
function mapWithPosts(
  posts: readonly { x: number; y: number }[],
  heights = [0.1, 0.5, 1],
): OccupancyOctree {
  const map = new OccupancyOctree();
  for (const { x, y } of posts) {
    for (const z of heights) map.insertRay({ x, y, z }, { x, y, z });
  }
  return map;
}

function sweep(footprint: Footprint, safetyMargin = 0.05): SweptFootprint {
  return new SweptFootprint({ footprint, heightBand: BAND, safetyMargin });
}

const ROBOT = sweep({ kind: 'circle', radius: 0.3 });

describe('SweptFootprint', () => {
  it('finds an obstacle straight ahead when the inflated footprint reaches it', () => {
    const map = mapWithPosts([{ x: 2.01, y: 0.01 }]);
    const hit = ROBOT.firstCollision(map, {
      start: ORIGIN,
      command: { linear: 1, angular: 0 },
      horizonSeconds: 3,
    });
    assert.ok(hit !== undefined);
    // The post's near face is at x = 2.0; the robot's edge plus margin is 0.35 m ahead of it.
    const contact = 2.0 - 0.35 - ORIGIN.x;
    assert.ok(
      hit.timeSeconds <= contact + 1e-9 && hit.timeSeconds > contact - 0.03,
      `${hit.timeSeconds}`,
    );
    assert.equal(hit.distanceMeters, hit.timeSeconds);
    assert.deepEqual(hit.obstacle, { x: 2.025, y: 0.025, z: 0.125 });
    assert.ok(Math.abs(hit.pose.x - (ORIGIN.x + hit.timeSeconds)) < 1e-12);
  });

  it('reports nothing when the path stays clear for the horizon', () => {
    const map = mapWithPosts([
      { x: 2.01, y: 1 },
      { x: 6, y: 0 },
    ]);
    assert.equal(
      ROBOT.firstCollision(map, {
        start: ORIGIN,
        command: { linear: 1, angular: 0 },
        horizonSeconds: 5,
      }),
      undefined,
    );
    assert.ok(
      ROBOT.firstCollision(map, {
        start: ORIGIN,
        command: { linear: 1, angular: 0 },
        horizonSeconds: 6,
      }) !== undefined,
    );
  });

  it('finds an obstacle behind when reversing', () => {
    const map = mapWithPosts([
      { x: -1.01, y: 0.01 },
      { x: 1.01, y: 0.01 },
    ]);
    const hit = ROBOT.firstCollision(map, {
      start: ORIGIN,
      command: { linear: -0.5, angular: 0 },
      horizonSeconds: 3,
    });
    assert.ok(hit !== undefined);
    assert.ok(hit.obstacle.x < 0);
    const contact = (ORIGIN.x - (-1.05 + 0.05) - 0.35) / 0.5;
    assert.ok(Math.abs(hit.timeSeconds - contact) < 0.06, `${hit.timeSeconds} vs ${contact}`);
    assert.ok(Math.abs(hit.distanceMeters - 0.5 * hit.timeSeconds) < 1e-12);
  });

  it('sweeps the corners of a rectangle turning on the spot', () => {
    const long = sweep({ kind: 'rectangle', length: 1, width: 0.4 }, 0.02);
    const map = mapWithPosts([{ x: 0.31, y: 0.31 }]);
    const still = long.firstCollision(map, {
      start: ORIGIN,
      command: { linear: 0, angular: 0 },
      horizonSeconds: 1,
    });
    assert.equal(still, undefined);
    const turning = long.firstCollision(map, {
      start: ORIGIN,
      command: { linear: 0, angular: 1 },
      horizonSeconds: 1,
    });
    assert.ok(turning !== undefined);
    assert.equal(turning.distanceMeters, 0);
    assert.ok(turning.timeSeconds > 0.05 && turning.timeSeconds < 0.4, `${turning.timeSeconds}`);
    assert.equal(
      long.firstCollision(map, {
        start: ORIGIN,
        command: { linear: 0, angular: -1 },
        horizonSeconds: 0.5,
      }),
      undefined,
    );
  });

  it('never collides while a round robot turns on the spot clear of everything', () => {
    const map = mapWithPosts([
      { x: 0.45, y: 0.01 },
      { x: -0.01, y: -0.45 },
    ]);
    assert.equal(
      ROBOT.firstCollision(map, {
        start: ORIGIN,
        command: { linear: 0, angular: 2 },
        horizonSeconds: 4,
      }),
      undefined,
    );
  });

  it('reports a collision at time zero when already touching, even without motion', () => {
    const map = mapWithPosts([{ x: 0.3, y: 0.01 }]);
    const hit = ROBOT.firstCollision(map, {
      start: ORIGIN,
      command: { linear: 0, angular: 0 },
      horizonSeconds: 2,
    });
    assert.ok(hit !== undefined);
    assert.equal(hit.timeSeconds, 0);
    assert.equal(hit.distanceMeters, 0);
    assert.deepEqual(hit.pose, ORIGIN);
    const zeroHorizon = ROBOT.firstCollision(map, {
      start: ORIGIN,
      command: { linear: 1, angular: 0 },
      horizonSeconds: 0,
    });
    assert.equal(zeroHorizon?.timeSeconds, 0);
  });

  it('ignores obstacles outside the height band', () => {
    const high = mapWithPosts([{ x: 1, y: 0.01 }], [1.6, 2]);
    assert.equal(
      ROBOT.firstCollision(high, {
        start: ORIGIN,
        command: { linear: 1, angular: 0 },
        horizonSeconds: 2,
      }),
      undefined,
    );
    const low = mapWithPosts([{ x: 1, y: 0.01 }], [0.06]);
    assert.ok(
      ROBOT.firstCollision(low, {
        start: ORIGIN,
        command: { linear: 1, angular: 0 },
        horizonSeconds: 2,
      }) !== undefined,
    );
  });

  it('follows the arc of a turning command, not the straight line', () => {
    // Turning left on a 1 m radius about (0, 1): the top of the circle is reached at t = π.
    const start: Pose2D = { x: 0, y: 0, yaw: 0 };
    const arc: VelocityCommand = { linear: 1, angular: 1 };
    const onArc = mapWithPosts([{ x: 0.01, y: 2.01 }]);
    const hit = ROBOT.firstCollision(onArc, { start, command: arc, horizonSeconds: 4 });
    assert.ok(hit !== undefined);
    assert.ok(hit.timeSeconds > 2.6 && hit.timeSeconds < Math.PI, `${hit.timeSeconds}`);
    const ahead = mapWithPosts([{ x: 2.5, y: 0.01 }]);
    assert.equal(
      ROBOT.firstCollision(ahead, { start, command: arc, horizonSeconds: 2 * Math.PI }),
      undefined,
    );
  });

  it('never misses a collision that dense sampling of the exact footprint finds', () => {
    // Posts near the path (a point on it, offset sideways) so that most runs do collide.
    const post = fc.record({
      alongSeconds: fc.double({ min: 0.2, max: 1.5, noNaN: true }),
      offsetX: fc.double({ min: -0.7, max: 0.7, noNaN: true }),
      offsetY: fc.double({ min: -0.7, max: 0.7, noNaN: true }),
    });
    const footprint = fc.oneof(
      fc.record({
        kind: fc.constant('circle' as const),
        radius: fc.double({ min: 0.1, max: 0.5, noNaN: true }),
      }),
      fc.record({
        kind: fc.constant('rectangle' as const),
        length: fc.double({ min: 0.2, max: 1, noNaN: true }),
        width: fc.double({ min: 0.2, max: 0.8, noNaN: true }),
      }),
    );
    const command = fc.record({
      linear: fc.double({ min: -1.5, max: 1.5, noNaN: true }),
      angular: fc.double({ min: -2, max: 2, noNaN: true }),
    });
    fc.assert(
      fc.property(
        fc.array(post, { minLength: 1, maxLength: 6 }),
        footprint,
        command,
        (near, shape, motion) => {
          const posts = near.map(({ alongSeconds, offsetX, offsetY }) => {
            const onPath = poseAt(ORIGIN, motion, alongSeconds);
            return { x: onPath.x + offsetX, y: onPath.y + offsetY };
          });
          const map = mapWithPosts(posts, [0.5]);
          const checker = sweep(shape, 0.03);
          const horizonSeconds = 1.5;
          const found = checker.firstCollision(map, {
            start: ORIGIN,
            command: motion,
            horizonSeconds,
          });
          const voxels = map.occupiedInBox({ x: -5, y: -5, z: 0 }, { x: 5, y: 5, z: 1 });
          const reference = denseFirstCollision(shape, 0.03, voxels, motion, horizonSeconds);
          if (reference !== undefined) {
            assert.ok(found !== undefined, `missed the collision at ${reference} s`);
            assert.ok(found.timeSeconds <= reference + 1e-9, `${found.timeSeconds} > ${reference}`);
          }
          if (found !== undefined) {
            // Conservative, but only by the sampling step: the exact footprint with margin plus
            // half a voxel touches the reported obstacle at the reported pose.
            assert.ok(touches(shape, 0.03 + 0.025 + 1e-9, found.pose, found.obstacle));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses invalid footprints and queries', () => {
    const invalid = (error: unknown) =>
      error instanceof KeelError && error.code === 'KEEL_INVALID_ARGUMENT';
    assert.throws(() => sweep({ kind: 'circle', radius: 0 }), invalid);
    assert.throws(() => sweep({ kind: 'rectangle', length: 1, width: Number.NaN }), invalid);
    assert.throws(() => sweep({ kind: 'circle', radius: 0.3 }, -0.1), invalid);
    assert.throws(
      () =>
        new SweptFootprint({
          footprint: { kind: 'circle', radius: 0.3 },
          heightBand: { zMin: 1, zMax: 0 },
          safetyMargin: 0,
        }),
      invalid,
    );
    const map = new OccupancyOctree();
    assert.throws(
      () =>
        ROBOT.firstCollision(map, {
          start: ORIGIN,
          command: { linear: Number.NaN, angular: 0 },
          horizonSeconds: 1,
        }),
      invalid,
    );
    assert.throws(
      () =>
        ROBOT.firstCollision(map, {
          start: { x: 0, y: Number.POSITIVE_INFINITY, yaw: 0 },
          command: { linear: 1, angular: 0 },
          horizonSeconds: 1,
        }),
      invalid,
    );
    assert.throws(
      () =>
        ROBOT.firstCollision(map, {
          start: ORIGIN,
          command: { linear: 1, angular: 0 },
          horizonSeconds: -1,
        }),
      invalid,
    );
    assert.throws(
      () =>
        ROBOT.firstCollision(map, {
          start: ORIGIN,
          command: { linear: 1, angular: 0 },
          horizonSeconds: 61,
        }),
      invalid,
    );
  });
});

describe('poseAt', () => {
  it('moves in a straight line without a turn rate', () => {
    const pose = poseAt({ x: 1, y: 1, yaw: Math.PI / 2 }, { linear: 2, angular: 0 }, 1.5);
    assert.ok(Math.abs(pose.x - 1) < 1e-12 && Math.abs(pose.y - 4) < 1e-12);
  });

  it('comes back to the start after a full circle', () => {
    const start = { x: 3, y: -2, yaw: 0.7 };
    const pose = poseAt(start, { linear: 0.8, angular: 0.5 }, (2 * Math.PI) / 0.5);
    assert.ok(Math.abs(pose.x - start.x) < 1e-9 && Math.abs(pose.y - start.y) < 1e-9);
    const half = poseAt({ x: 0, y: 0, yaw: 0 }, { linear: 1, angular: 1 }, Math.PI);
    assert.ok(Math.abs(half.x) < 1e-12 && Math.abs(half.y - 2) < 1e-12);
  });
});

/** Whether the exact footprint, inflated by `margin`, at `pose` touches the voxel at `centre`. */
function touches(shape: Footprint, margin: number, pose: Pose2D, centre: Vector3): boolean {
  const half = 0.025;
  const dx = centre.x - pose.x;
  const dy = centre.y - pose.y;
  if (shape.kind === 'circle') {
    const outsideX = Math.max(Math.abs(dx) - half, 0);
    const outsideY = Math.max(Math.abs(dy) - half, 0);
    return Math.hypot(outsideX, outsideY) <= shape.radius + margin;
  }
  // Sample the voxel's square densely and test each point against the inflated rectangle.
  const cosine = Math.cos(pose.yaw);
  const sine = Math.sin(pose.yaw);
  for (let u = -half; u <= half + 1e-12; u += half / 5) {
    for (let v = -half; v <= half + 1e-12; v += half / 5) {
      const localX = (dx + u) * cosine + (dy + v) * sine;
      const localY = -(dx + u) * sine + (dy + v) * cosine;
      if (
        Math.abs(localX) <= shape.length / 2 + margin &&
        Math.abs(localY) <= shape.width / 2 + margin
      )
        return true;
    }
  }
  return false;
}

/** The first time, sampled every millisecond, at which the exact footprint touches a voxel. */
function denseFirstCollision(
  shape: Footprint,
  margin: number,
  voxels: readonly Vector3[],
  command: VelocityCommand,
  horizonSeconds: number,
): number | undefined {
  for (let step = 0; step <= horizonSeconds * 1000; step += 1) {
    const time = step / 1000;
    const pose = poseAt(ORIGIN, command, time);
    if (voxels.some((voxel) => touches(shape, margin, pose, voxel))) return time;
  }
  return undefined;
}
