import { setTimeout as delay } from 'node:timers/promises';
import type { ExecutorResult, SyscallExecutor, SyscallIntent } from '../../kernel/gate/syscall.ts';
import type { EventBus } from '../../platform/bus/event-bus.ts';
import { defineTopic } from '../../platform/bus/topic.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import { BODY_MODES } from './control/control-mailbox.ts';
import type { RobotBody } from './control/robot-body.ts';
import type { FleetTaskBoard } from './fleet/fleet-task-board.ts';
import { parseDriveParams } from './intents/robot-intent.ts';
import {
  POSE_MAX_AGE_MS,
  perceptionNow,
  type RobotPerception,
} from './perception/robot-perception.ts';

/** Peer and broadcast messages between robots (reliable: none may be lost). */
export const FLEET_MESSAGES = defineTopic<{
  readonly from: string;
  readonly to: string;
  readonly message: string;
  readonly at: number;
}>('fleet.messages', 'reliable');

export interface RobotExecutorParts {
  readonly robotId: string;
  readonly body: RobotBody;
  readonly perception: RobotPerception;
  readonly board: FleetTaskBoard;
  readonly bus: EventBus;
  readonly now: () => number;
}

function finite(intent: SyscallIntent, name: string): number {
  const value = intent.params[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `parameter ${name} must be a finite number`);
  }
  return value;
}

function text(intent: SyscallIntent, name: string, max: number): string {
  const value = intent.params[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `parameter ${name} must be text of 1–${max} characters`,
    );
  }
  return value;
}

const done = (value: JsonValue): ExecutorResult => ({ value });

/**
 * The executors of the robot syscalls. They run only after the gate's capability check and
 * the motion safety rules passed; the body checks the e-stop latch once more itself.
 * `hal.observe` is read-only: the fused pose, the body's state and the obstacles nearby.
 *
 * @example
 * ```ts
 * for (const executor of robotExecutors(parts)) kernel.registerExecutor(executor);
 * ```
 */
export function robotExecutors(parts: RobotExecutorParts): SyscallExecutor[] {
  const { body, perception } = parts;
  return [
    {
      specificationVersion: 'v1',
      kind: 'hal.drive',
      timeoutMs: 5000,
      doExecute: async (intent) => {
        // Read exactly as the safety rules read it: by resource, strictly.
        const drive = parseDriveParams(intent.resource, intent.params);
        if (drive.type === 'trajectory') {
          const { id } = await body.followTrajectory(drive.points, drive.maxSpeed);
          return done({ trajectory: id, accepted: true, waypoints: drive.points.length });
        }
        body.drive(drive.linear, drive.angular);
        return done({ linear: drive.linear, angular: drive.angular });
      },
    },
    {
      specificationVersion: 'v1',
      kind: 'hal.arm',
      timeoutMs: 5000,
      doExecute: async (intent) => {
        if (intent.resource !== 'arm') {
          throw new KeelError('KEEL_NOT_FOUND', `hal.arm has no resource ${intent.resource}`);
        }
        const joints = await body.moveEndEffector({
          x: finite(intent, 'x'),
          y: finite(intent, 'y'),
          z: finite(intent, 'z'),
        });
        return done({ joints: { ...joints } });
      },
    },
    {
      specificationVersion: 'v1',
      kind: 'hal.relay',
      timeoutMs: 5000,
      doExecute: async (intent) => {
        if (typeof intent.params.state !== 'boolean') {
          throw new KeelError('KEEL_INVALID_ARGUMENT', 'parameter state must be true or false');
        }
        await body.setRelay(intent.resource, intent.params.state);
        return done({ relayId: intent.resource, state: intent.params.state });
      },
    },
    {
      specificationVersion: 'v1',
      kind: 'hal.observe',
      timeoutMs: 5000,
      // `waitMs` (≤ 2000): wait that long first, or less once the body falls idle (a
      // trajectory ended), so an agent can poll without flooding its journal.
      doExecute: async (intent, context) => {
        const waitMs =
          typeof intent.params.waitMs === 'number'
            ? Math.min(2000, Math.max(0, intent.params.waitMs))
            : 0;
        const started = parts.now();
        // The first 20 ms always pass, so a trajectory just sent has started before an idle
        // body ends the wait.
        while (parts.now() - started < waitMs && !context.signal.aborted) {
          if (parts.now() - started >= 20 && (body.state()?.mode ?? 0) === 0) break;
          await delay(Math.min(20, waitMs - (parts.now() - started)));
        }
        const estimate = perception.estimate();
        // The last pose is kept when the sensors stop; the brain is told how old it is, and
        // whether it is too old for a motion to rest on (the motion rules refuse it then).
        const nowMs = perceptionNow();
        const poseAgeMs = perception.ageMs(nowMs);
        const state = body.state();
        const radius = Math.min(
          20,
          Math.max(0.5, typeof intent.params.radius === 'number' ? intent.params.radius : 6),
        );
        return done({
          robotId: parts.robotId,
          pose: estimate === undefined ? null : { x: estimate.x, y: estimate.y, yaw: estimate.yaw },
          // Rounded up, so that a stale pose never reads as the limit itself.
          poseAgeMs: poseAgeMs === undefined ? null : Math.ceil(poseAgeMs),
          poseStale: perception.freshEstimate(nowMs, POSE_MAX_AGE_MS) === undefined,
          linear: estimate?.linear ?? 0,
          angular: estimate?.angular ?? 0,
          // A body that reports no battery (-1) says so, rather than reading as empty.
          battery: state === undefined || state.battery < 0 ? null : state.battery,
          charging: state?.charging === 1,
          mode: state === undefined ? 'unknown' : (BODY_MODES[state.mode] ?? 'unknown'),
          waypoint: state?.waypoint ?? 0,
          nearestAhead: state === undefined || state.nearestAhead < 0 ? null : state.nearestAhead,
          estop: { engaged: body.engaged, reason: body.engaged ? body.estopReason : null },
          obstacles:
            estimate === undefined
              ? []
              : perception.obstaclesAround(estimate.x, estimate.y, radius),
        });
      },
    },
    {
      specificationVersion: 'v1',
      kind: 'hitl',
      // The question went to the approvals inbox (the policy asks a human for every `hitl`);
      // the operator answers by approving with `--set answer=…`.
      doExecute: async (intent) => {
        const answer = intent.params.answer;
        return done({
          question: text(intent, 'question', 2000),
          answer: typeof answer === 'string' ? answer.slice(0, 4000) : null,
        });
      },
    },
    {
      specificationVersion: 'v1',
      kind: 'fleet.message',
      doExecute: async (intent, context) => {
        await parts.bus.publish(FLEET_MESSAGES, {
          from: context.agentId,
          to: intent.resource,
          message: text(intent, 'message', 4000),
          at: parts.now(),
        });
        return done({ delivered: true, to: intent.resource });
      },
    },
    {
      specificationVersion: 'v1',
      kind: 'fleet.tasks',
      doExecute: async (intent, context) => {
        const claim = intent.params.claim;
        if (typeof claim === 'string') {
          return done({ ...(await parts.board.claim(claim, context.agentId, parts.now())) });
        }
        if (intent.params.list === true) {
          return done({ tasks: (await parts.board.list()).map((task) => ({ ...task })) });
        }
        const task = await parts.board.post(
          context.agentId,
          {
            title: text(intent, 'title', 200),
            description:
              typeof intent.params.description === 'string'
                ? intent.params.description.slice(0, 4000)
                : '',
          },
          parts.now(),
        );
        return done({ ...task });
      },
    },
  ];
}
