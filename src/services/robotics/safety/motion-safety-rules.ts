import type { MotionSafetySettings } from '../../../kernel/config/robotics-configuration.ts';
import type { VerifierRule, VerifierVerdict } from '../../../kernel/verifier/verifier-rule.ts';
import { ALLOW } from '../../../kernel/verifier/verifier-rule.ts';
import type { Pose2D } from '../geometry/rigid-transform.ts';
import { type DriveParams, parseDriveParams } from '../intents/robot-intent.ts';
import type { OccupancyOctree } from '../perception/occupancy-octree.ts';
import { poseAt, SweptFootprint } from '../perception/swept-footprint.ts';

/** What the motion rules read about the robot, at the moment they judge an intent. */
export interface MotionWorldModel {
  /** The e-stop latch and why it is set. */
  estop(): { readonly engaged: boolean; readonly reason: string };
  /** The fused pose and velocity, or `undefined` before the body reported one. */
  motion(): (Pose2D & { readonly linear: number; readonly angular: number }) | undefined;
  map(): OccupancyOctree;
  /** Until when (epoch ms) a human's teleoperation suspends AI motion. */
  manualOverrideUntil(): number;
}

type Params = Readonly<Record<string, unknown>>;

const isMotion = (intent: { kind: string; params: Params }) =>
  intent.kind === 'hal.drive' ||
  intent.kind === 'hal.arm' ||
  (intent.kind === 'hal.relay' && intent.params.state === true);

const isDrive = (intent: { kind: string }) => intent.kind === 'hal.drive';

function number(params: Params, name: string): number | undefined {
  const value = params[name];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function refuse(reason: string, details?: Record<string, unknown>): VerifierVerdict {
  return details === undefined ? { ok: false, reason } : { ok: false, reason, details };
}

/** A drive intent as the rules see it (the executor reads it the same way), or why not. */
function driveShape(intent: { resource: string; params: Params }): DriveParams | string {
  try {
    return parseDriveParams(intent.resource, intent.params);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const isStop = (shape: DriveParams) =>
  shape.type === 'velocity' && shape.linear === 0 && shape.angular === 0;

/**
 * The motion safety kernel: verifier rules for robot intents, run in the kernel's gate
 * before any motion reaches the body. In order: the e-stop latch, the manual-override
 * interlock, speed caps, acceleration caps, the end-effector workspace box, the geofence,
 * and collision of the swept footprint with the occupancy map. Each refuses with a reason
 * and details, and the gate audits the refusal. A drive intent these rules cannot read
 * (neither a velocity nor a trajectory) is refused, never waved through.
 *
 * @example
 * ```ts
 * for (const rule of motionSafetyRules(settings, world)) kernel.verifier.register(rule);
 * ```
 */
export function motionSafetyRules(
  settings: MotionSafetySettings,
  world: MotionWorldModel,
): VerifierRule[] {
  const sweep = new SweptFootprint({
    footprint: { kind: 'circle', radius: settings.collision.footprintRadius },
    heightBand: { zMin: settings.collision.zMin, zMax: settings.collision.zMax },
    safetyMargin: settings.collision.safetyMargin,
  });
  return [
    {
      id: 'robot-estop-latch',
      description: 'no motion while the e-stop latch is set',
      appliesTo: isMotion,
      check: () => {
        const estop = world.estop();
        if (!estop.engaged) return ALLOW;
        return {
          ok: false,
          code: 'KEEL_ESTOP_ENGAGED',
          reason: `the e-stop is engaged (${estop.reason})`,
          details: { reason: estop.reason },
        };
      },
    },
    {
      id: 'robot-manual-override',
      description: 'no AI motion while a human teleoperates, and for a window after',
      appliesTo: isMotion,
      check: (_intent, context) => {
        const until = world.manualOverrideUntil();
        if (context.now >= until) return ALLOW;
        return refuse('a human is driving the robot: AI motion is suspended', { until });
      },
    },
    {
      id: 'robot-speed-cap',
      description: `speed ≤ ${settings.maxLinear} m/s, turn rate ≤ ${settings.maxAngular} rad/s`,
      appliesTo: isDrive,
      check: (intent) => {
        const shape = driveShape(intent);
        if (typeof shape === 'string') return refuse(shape);
        if (shape.type === 'trajectory') {
          return shape.maxSpeed <= settings.maxLinear
            ? ALLOW
            : refuse(
                `maxSpeed ${shape.maxSpeed} m/s exceeds the speed cap ${settings.maxLinear} m/s`,
                { cap: settings.maxLinear },
              );
        }
        if (Math.abs(shape.linear) > settings.maxLinear) {
          return refuse(
            `linear ${shape.linear} m/s exceeds the speed cap ${settings.maxLinear} m/s`,
            { cap: settings.maxLinear },
          );
        }
        if (Math.abs(shape.angular) > settings.maxAngular) {
          return refuse(
            `angular ${shape.angular} rad/s exceeds the turn-rate cap ${settings.maxAngular} rad/s`,
            { cap: settings.maxAngular },
          );
        }
        return ALLOW;
      },
    },
    {
      id: 'robot-acceleration-cap',
      description: 'a velocity change must be reachable at the acceleration caps within the window',
      appliesTo: isDrive,
      check: (intent) => {
        const shape = driveShape(intent);
        if (typeof shape === 'string') return refuse(shape);
        const now = world.motion() ?? { linear: 0, angular: 0 };
        const window = settings.accelerationWindowSeconds;
        const linearLimit = settings.maxLinearAcceleration * window;
        const angularLimit = settings.maxAngularAcceleration * window;
        // A trajectory is not a velocity step: the loop's follower ramps its speed within
        // the body's own acceleration limits, so only velocity commands are judged here.
        if (shape.type !== 'velocity') return ALLOW;
        const target = shape;
        const towardsZero = (value: number, present: number) =>
          value * present >= 0 && Math.abs(value) <= Math.abs(present);
        // Slowing down is always allowed: stopping must never be refused.
        if (towardsZero(target.linear, now.linear) && towardsZero(target.angular, now.angular)) {
          return ALLOW;
        }
        if (Math.abs(target.linear - now.linear) > linearLimit + 1e-9) {
          return refuse(
            `a change of ${Math.abs(target.linear - now.linear).toFixed(3)} m/s exceeds the acceleration cap (${linearLimit} m/s within ${window} s)`,
            { limit: linearLimit },
          );
        }
        if (Math.abs(target.angular - now.angular) > angularLimit + 1e-9) {
          return refuse(
            `a change of ${Math.abs(target.angular - now.angular).toFixed(3)} rad/s exceeds the angular acceleration cap (${angularLimit} rad/s within ${window} s)`,
            { limit: angularLimit },
          );
        }
        return ALLOW;
      },
    },
    {
      id: 'robot-workspace-box',
      description: 'end-effector targets stay inside the workspace box',
      appliesTo: (intent) => intent.kind === 'hal.arm',
      check: (intent) => {
        if (intent.resource !== 'arm') return refuse(`hal.arm has no resource ${intent.resource}`);
        const box = settings.workspace;
        for (const axis of ['x', 'y', 'z'] as const) {
          const value = number(intent.params, axis);
          if (value === undefined) return refuse(`an arm intent needs a finite ${axis}`);
          if (value < box.min[axis] || value > box.max[axis]) {
            return refuse(
              `${axis} ${value} m is outside the workspace box [${box.min[axis]}, ${box.max[axis]}]`,
              { axis, box },
            );
          }
        }
        return ALLOW;
      },
    },
    ...(settings.geofence === undefined ? [] : [geofenceRule(settings, settings.geofence, world)]),
    {
      id: 'robot-collision',
      description: 'the swept footprint of a motion must not meet an obstacle in the map',
      appliesTo: isDrive,
      check: (intent) => {
        const shape = driveShape(intent);
        if (typeof shape === 'string') return refuse(shape);
        // Stopping is always clear, whatever the map or the pose.
        if (isStop(shape)) return ALLOW;
        const motion = world.motion();
        if (motion === undefined) {
          return refuse('the robot’s pose is not known yet: no motion until it is');
        }
        const map = world.map();
        if (shape.type === 'velocity') {
          const hit = sweep.firstCollision(map, {
            start: motion,
            command: shape,
            horizonSeconds: settings.collision.horizonSeconds,
          });
          return hit === undefined
            ? ALLOW
            : refuse(
                `the motion meets an obstacle in ${hit.timeSeconds.toFixed(2)} s (${hit.distanceMeters.toFixed(2)} m)`,
                { timeSeconds: hit.timeSeconds, obstacle: hit.obstacle },
              );
        }
        let from = { x: motion.x, y: motion.y };
        for (const [index, point] of shape.points.entries()) {
          const hit = sweepLeg(sweep, map, from, point);
          if (hit !== undefined) {
            return refuse(
              `the path to waypoint ${index + 1} meets an obstacle after ${hit.toFixed(2)} m`,
              { waypoint: index, distanceMeters: hit },
            );
          }
          from = point;
        }
        return ALLOW;
      },
    },
  ];
}

/** Longest piece of a leg swept in one query (the sweep's horizon is at most 60 s at 1 m/s). */
const LEG_CHUNK_METERS = 50;

/** Sweeps a straight leg end to end, in chunks; returns the distance to the first collision. */
function sweepLeg(
  sweep: SweptFootprint,
  map: OccupancyOctree,
  from: { x: number; y: number },
  to: { x: number; y: number },
): number | undefined {
  const length = Math.hypot(to.x - from.x, to.y - from.y);
  if (length <= 1e-6) return undefined;
  const yaw = Math.atan2(to.y - from.y, to.x - from.x);
  for (let done = 0; done < length; done += LEG_CHUNK_METERS) {
    const start = {
      x: from.x + Math.cos(yaw) * done,
      y: from.y + Math.sin(yaw) * done,
      yaw,
    };
    const hit = sweep.firstCollision(map, {
      start,
      command: { linear: 1, angular: 0 },
      horizonSeconds: Math.min(LEG_CHUNK_METERS, length - done),
    });
    if (hit !== undefined) return done + hit.distanceMeters;
  }
  return undefined;
}

function geofenceRule(
  settings: MotionSafetySettings,
  polygon: ReadonlyArray<{ x: number; y: number }>,
  world: MotionWorldModel,
): VerifierRule {
  const radius = settings.collision.footprintRadius;
  // Inside, and the footprint clear of every edge: a sample every half footprint radius
  // cannot step over a notch narrower than the footprint.
  const allowed = (point: { x: number; y: number }) =>
    insidePolygon(point, polygon) && distanceToEdges(point, polygon) >= radius;
  const spacing = radius / 2;
  return {
    id: 'robot-geofence',
    description: 'the base, footprint included, stays inside the geofence polygon',
    appliesTo: isDrive,
    check: (intent) => {
      const shape = driveShape(intent);
      if (typeof shape === 'string') return refuse(shape);
      if (isStop(shape)) return ALLOW;
      const motion = world.motion();
      if (motion === undefined)
        return refuse('the robot’s pose is not known yet: no motion until it is');
      if (shape.type === 'velocity') {
        const horizon = settings.collision.horizonSeconds;
        const travel = Math.abs(shape.linear) * horizon;
        const steps = Math.max(20, Math.ceil(travel / spacing));
        for (let step = 1; step <= steps; step += 1) {
          const pose = poseAt(motion, shape, (horizon * step) / steps);
          if (!allowed(pose)) {
            return refuse(
              `the motion leaves the geofence within ${((horizon * step) / steps).toFixed(2)} s`,
              { at: { x: pose.x, y: pose.y } },
            );
          }
        }
        return ALLOW;
      }
      let from = { x: motion.x, y: motion.y };
      for (const [index, point] of shape.points.entries()) {
        const length = Math.hypot(point.x - from.x, point.y - from.y);
        const steps = Math.max(1, Math.ceil(length / spacing));
        for (let step = 1; step <= steps; step += 1) {
          const sample = {
            x: from.x + ((point.x - from.x) * step) / steps,
            y: from.y + ((point.y - from.y) * step) / steps,
          };
          if (!allowed(sample)) {
            return refuse(`the path to waypoint ${index + 1} leaves the geofence`, { at: sample });
          }
        }
        from = point;
      }
      return ALLOW;
    },
  };
}

function distanceToEdges(
  point: { x: number; y: number },
  polygon: ReadonlyArray<{ x: number; y: number }>,
): number {
  let nearest = Number.POSITIVE_INFINITY;
  for (
    let index = 0, previous = polygon.length - 1;
    index < polygon.length;
    previous = index, index += 1
  ) {
    const a = polygon[previous];
    const b = polygon[index];
    if (a === undefined || b === undefined) continue;
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const lengthSquared = dx * dx + dy * dy;
    const t =
      lengthSquared === 0
        ? 0
        : Math.max(0, Math.min(1, ((point.x - a.x) * dx + (point.y - a.y) * dy) / lengthSquared));
    nearest = Math.min(nearest, Math.hypot(point.x - (a.x + t * dx), point.y - (a.y + t * dy)));
  }
  return nearest;
}

/**
 * Whether a point lies inside a simple polygon (even-odd rule); a point on an edge counts as
 * inside.
 *
 * @example
 * ```ts
 * insidePolygon({ x: 1, y: 1 }, [{ x: 0, y: 0 }, { x: 2, y: 0 }, { x: 2, y: 2 }, { x: 0, y: 2 }]); // true
 * ```
 */
export function insidePolygon(
  point: { x: number; y: number },
  polygon: ReadonlyArray<{ x: number; y: number }>,
): boolean {
  let inside = false;
  for (
    let index = 0, previous = polygon.length - 1;
    index < polygon.length;
    previous = index, index += 1
  ) {
    const a = polygon[index];
    const b = polygon[previous];
    if (a === undefined || b === undefined) continue;
    const cross = (b.x - a.x) * (point.y - a.y) - (b.y - a.y) * (point.x - a.x);
    const onSegment =
      Math.abs(cross) < 1e-9 &&
      point.x >= Math.min(a.x, b.x) - 1e-9 &&
      point.x <= Math.max(a.x, b.x) + 1e-9 &&
      point.y >= Math.min(a.y, b.y) - 1e-9 &&
      point.y <= Math.max(a.y, b.y) + 1e-9;
    if (onSegment) return true;
    if (
      a.y > point.y !== b.y > point.y &&
      point.x < ((b.x - a.x) * (point.y - a.y)) / (b.y - a.y) + a.x
    ) {
      inside = !inside;
    }
  }
  return inside;
}
