import type { MotionSafetySettings } from '../../../kernel/config/robotics-configuration.ts';
import type { VerifierRule, VerifierVerdict } from '../../../kernel/verifier/verifier-rule.ts';
import { ALLOW } from '../../../kernel/verifier/verifier-rule.ts';
import type { Pose2D } from '../geometry/rigid-transform.ts';
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

function points(params: Params): Array<{ x: number; y: number }> | undefined {
  if (!Array.isArray(params.points)) return undefined;
  const result: Array<{ x: number; y: number }> = [];
  for (const point of params.points as unknown[]) {
    const candidate = point as { x?: unknown; y?: unknown } | null;
    if (typeof candidate?.x !== 'number' || typeof candidate.y !== 'number') return undefined;
    if (!Number.isFinite(candidate.x) || !Number.isFinite(candidate.y)) return undefined;
    result.push({ x: candidate.x, y: candidate.y });
  }
  return result;
}

function refuse(reason: string, details?: Record<string, unknown>): VerifierVerdict {
  return details === undefined ? { ok: false, reason } : { ok: false, reason, details };
}

/** A drive intent as the rules see it: a velocity, or a trajectory. */
type DriveShape =
  | { readonly type: 'velocity'; readonly linear: number; readonly angular: number }
  | {
      readonly type: 'trajectory';
      readonly points: Array<{ x: number; y: number }>;
      readonly maxSpeed: number;
    };

function driveShape(params: Params): DriveShape | undefined {
  const path = points(params);
  const maxSpeed = number(params, 'maxSpeed');
  if (path !== undefined && maxSpeed !== undefined)
    return { type: 'trajectory', points: path, maxSpeed };
  const linear = number(params, 'linear');
  const angular = number(params, 'angular');
  if (linear !== undefined && angular !== undefined) return { type: 'velocity', linear, angular };
  return undefined;
}

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
        const shape = driveShape(intent.params);
        if (shape === undefined)
          return refuse('a drive intent needs linear and angular, or points and maxSpeed');
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
        const shape = driveShape(intent.params);
        if (shape?.type !== 'velocity') return ALLOW;
        const now = world.motion() ?? { linear: 0, angular: 0 };
        const window = settings.accelerationWindowSeconds;
        const linearLimit = settings.maxLinearAcceleration * window;
        const angularLimit = settings.maxAngularAcceleration * window;
        // Slowing down is always allowed: stopping must never be refused.
        const towardsZero = (target: number, present: number) =>
          target * present >= 0 && Math.abs(target) <= Math.abs(present);
        const slowing =
          towardsZero(shape.linear, now.linear) && towardsZero(shape.angular, now.angular);
        if (slowing) return ALLOW;
        if (Math.abs(shape.linear - now.linear) > linearLimit + 1e-9) {
          return refuse(
            `a change of ${Math.abs(shape.linear - now.linear).toFixed(3)} m/s exceeds the acceleration cap (${linearLimit} m/s within ${window} s)`,
            { limit: linearLimit },
          );
        }
        if (Math.abs(shape.angular - now.angular) > angularLimit + 1e-9) {
          return refuse(
            `a change of ${Math.abs(shape.angular - now.angular).toFixed(3)} rad/s exceeds the angular acceleration cap (${angularLimit} rad/s within ${window} s)`,
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
        const shape = driveShape(intent.params);
        const motion = world.motion();
        if (shape === undefined)
          return refuse('a drive intent needs linear and angular, or points and maxSpeed');
        if (motion === undefined)
          return refuse('the robot’s pose is not known yet: no motion until it is');
        const map = world.map();
        if (shape.type === 'velocity') {
          if (shape.linear === 0 && shape.angular === 0) return ALLOW;
          const hit = sweep.firstCollision(map, {
            start: motion,
            command: shape,
            horizonSeconds: settings.collision.horizonSeconds,
          });
          return hit === undefined
            ? ALLOW
            : refuse(
                `the motion meets an obstacle in ${hit.timeSeconds.toFixed(2)} s (${hit.distanceMeters.toFixed(2)} m)`,
                {
                  timeSeconds: hit.timeSeconds,
                  obstacle: hit.obstacle,
                },
              );
        }
        let from = { x: motion.x, y: motion.y };
        for (const [index, point] of shape.points.entries()) {
          const length = Math.hypot(point.x - from.x, point.y - from.y);
          if (length > 1e-6) {
            const hit = sweep.firstCollision(map, {
              start: { x: from.x, y: from.y, yaw: Math.atan2(point.y - from.y, point.x - from.x) },
              command: { linear: 1, angular: 0 },
              horizonSeconds: Math.min(60, length),
            });
            if (hit !== undefined) {
              return refuse(
                `the path to waypoint ${index + 1} meets an obstacle after ${hit.distanceMeters.toFixed(2)} m`,
                {
                  waypoint: index,
                  obstacle: hit.obstacle,
                },
              );
            }
          }
          from = point;
        }
        return ALLOW;
      },
    },
  ];
}

function geofenceRule(
  settings: MotionSafetySettings,
  polygon: ReadonlyArray<{ x: number; y: number }>,
  world: MotionWorldModel,
): VerifierRule {
  return {
    id: 'robot-geofence',
    description: 'the base stays inside the geofence polygon',
    appliesTo: isDrive,
    check: (intent) => {
      const shape = driveShape(intent.params);
      const motion = world.motion();
      if (shape === undefined || motion === undefined)
        return refuse('the geofence cannot judge this motion');
      const outside = (point: { x: number; y: number }) => !insidePolygon(point, polygon);
      if (shape.type === 'velocity') {
        const horizon = settings.collision.horizonSeconds;
        for (let step = 1; step <= 20; step += 1) {
          const pose = poseAt(motion, shape, (horizon * step) / 20);
          if (outside(pose)) {
            return refuse(
              `the motion leaves the geofence within ${((horizon * step) / 20).toFixed(2)} s`,
              { at: { x: pose.x, y: pose.y } },
            );
          }
        }
        return ALLOW;
      }
      let from = { x: motion.x, y: motion.y };
      for (const [index, point] of shape.points.entries()) {
        for (let step = 1; step <= 10; step += 1) {
          const sample = {
            x: from.x + ((point.x - from.x) * step) / 10,
            y: from.y + ((point.y - from.y) * step) / 10,
          };
          if (outside(sample))
            return refuse(`the path to waypoint ${index + 1} leaves the geofence`, { at: sample });
        }
        from = point;
      }
      return ALLOW;
    },
  };
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
