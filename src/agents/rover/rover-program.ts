import type { ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { toKeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type {
  AgentContext,
  ChatMessage,
  ChatToolCall,
} from '../../runtime/worker/agent-program.ts';
import { defineAgent } from '../../runtime/worker/agent-program.ts';
import {
  parseRobotIntent,
  type RobotIntent,
  robotIntentToSyscall,
} from '../../services/robotics/intents/robot-intent.ts';
import { FATAL_TOOL_ERRORS } from '../tool-loop/tool-loop-program.ts';
import { action, condition, selector, sequence } from './behavior-tree.ts';
import { type Point, pathIsClear, planPath } from './grid-planner.ts';
import { type RoverSettings, RoverSettingsSchema } from './rover-settings.ts';
import { ROVER_SYSTEM_PROMPT, ROVER_TOOLS } from './rover-tools.ts';

/** What `hal.observe` returns (see services/robotics/robot-executors.ts). */
interface Observation {
  readonly pose: { x: number; y: number; yaw: number } | null;
  /** How old the pose is, and whether too old to drive on (absent in journals of before). */
  readonly poseAgeMs?: number | null;
  readonly poseStale?: boolean;
  readonly battery: number | null;
  readonly mode: string;
  readonly nearestAhead: number | null;
  readonly estop: { engaged: boolean; reason: string | null };
  readonly obstacles: Array<[number, number]>;
}

interface Goal {
  readonly point: Point;
  readonly source: 'llm' | 'dock' | 'patrol';
  /** The LLM's tool call that set it, answered when the goal ends. */
  readonly toolCallId: string | undefined;
}

/** The rover's blackboard: what the behavior tree reads and writes each cycle. */
interface Board {
  observation: Observation;
  goal: Goal | undefined;
  path: Point[] | undefined;
  replans: number;
  patrolIndex: number;
  decisions: number;
  finished: JsonValue | undefined;
  readonly messages: ChatMessage[];
  readonly refusals: Array<{ action: string; code: string; message: string }>;
  readonly reached: Point[];
}

/** A syscall's failure as the LLM is told it: its code and message. */
function describeError(error: unknown): { code: string; message: string } {
  const failure = toKeelError(error);
  return { code: failure.code, message: failure.message };
}

function distance(from: Point, to: Point): number {
  return Math.hypot(to.x - from.x, to.y - from.y);
}

/**
 * The rover: an OODA loop over the robot's syscalls. Observe (`hal.observe`: the fused pose,
 * battery, e-stop and the obstacles the LiDAR mapped), orient (the goal, the plan), decide (a
 * behavior tree of reflexes — return to the dock on low battery, stop for an obstacle too
 * close, follow and re-plan a path around what the map shows, patrol waypoints — and the LLM
 * for goals and questions), act (robot intents through the gate, where the motion safety
 * kernel may refuse them; a refusal goes back to the LLM as its tool result). `ask_human`
 * suspends the run on an approval while the body's control loop keeps it safe.
 *
 * @example
 * ```ts
 * // manifest: program: { builtin: 'rover', settings: { dock: { x: 1, y: 1 } } }
 * ```
 */
export const roverProgram = defineAgent({
  name: 'rover',
  run: async (context: AgentContext): Promise<JsonValue> => {
    const settings = RoverSettingsSchema.parse(context.settings);
    const model = settings.model ?? context.model;
    if (model === undefined)
      throw new Error('the rover needs a model: set models.default or program.settings.model');
    const observe = async (): Promise<Observation> =>
      (await context.syscall('hal.observe', settings.robotId, {
        waitMs: settings.observeWaitMs,
      })) as unknown as Observation;
    const first = await observe();
    const start = first.pose ?? { x: 0, y: 0 };
    const bounds = settings.bounds ?? {
      minX: start.x - 15,
      minY: start.y - 15,
      maxX: start.x + 15,
      maxY: start.y + 15,
    };
    const planner = { cell: 0.2, clearance: settings.clearance, bounds };
    const board: Board = {
      observation: first,
      goal: undefined,
      path: undefined,
      replans: 0,
      patrolIndex: 0,
      decisions: 0,
      finished: undefined,
      messages: [
        { role: 'system', content: ROVER_SYSTEM_PROMPT },
        { role: 'user', content: `${context.task.prompt}\n\nNow: ${summarise(first)}` },
      ],
      refusals: [],
      reached: [],
    };

    const act = async (
      intent: RobotIntent,
    ): Promise<{ ok: true; value: JsonValue } | { ok: false; code: string; message: string }> => {
      const syscall = robotIntentToSyscall(intent);
      try {
        return {
          ok: true,
          value: await context.syscall(
            syscall.kind,
            syscall.resource,
            syscall.params as JsonObject,
          ),
        };
      } catch (error) {
        const described = describeError(error);
        // Waiting for a human, a cancellation or a stop ends this attempt at the run; the
        // run resumes (by replay) or ends. Everything else is a refusal for the LLM to read.
        if (FATAL_TOOL_ERRORS.has(described.code as ErrorCode)) throw error;
        board.refusals.push({ action: intent.action, ...described });
        await context.log('warn', `${intent.action} refused: ${described.code}`, {
          message: described.message,
        });
        return { ok: false, ...described };
      }
    };

    const answer = (toolCallId: string | undefined, content: string) => {
      if (toolCallId !== undefined) board.messages.push({ role: 'tool', toolCallId, content });
    };

    const endGoal = (outcome: string) => {
      const goal = board.goal;
      board.goal = undefined;
      board.path = undefined;
      board.replans = 0;
      if (goal?.source === 'llm')
        answer(goal.toolCallId, `${outcome}. Now: ${summarise(board.observation)}`);
    };

    const planAndFollow = async (): Promise<'running' | 'failure'> => {
      const goal = board.goal;
      const pose = board.observation.pose;
      if (goal === undefined || pose === null) return 'failure';
      board.replans += 1;
      if (board.replans > settings.maxReplans) {
        endGoal(
          `gave up on (${goal.point.x}, ${goal.point.y}): no safe path after ${settings.maxReplans} plans`,
        );
        return 'failure';
      }
      const path = planPath(pose, goal.point, board.observation.obstacles, planner);
      if (path === undefined) {
        endGoal(`no safe path to (${goal.point.x}, ${goal.point.y}) in the map`);
        return 'failure';
      }
      const outcome = await act({
        action: 'FollowTrajectory',
        payload: { points: path, maxSpeed: settings.cruiseSpeed },
      });
      if (!outcome.ok) {
        // Refused (the e-stop, a rule): no path is followed; the next cycle plans again.
        board.path = undefined;
        return 'running';
      }
      board.path = path;
      return 'running';
    };

    const decide = async (): Promise<'running'> => {
      board.decisions += 1;
      if (board.decisions > settings.maxDecisions) {
        board.finished = { status: 'stopped', reason: 'decision limit', ...report(board) };
        return 'running';
      }
      const reply = await context.chat(model, { messages: board.messages, tools: ROVER_TOOLS });
      board.messages.push({ role: 'assistant', content: reply.text, toolCalls: reply.toolCalls });
      if (reply.toolCalls.length === 0) {
        board.finished = { status: 'done', summary: reply.text, ...report(board) };
        return 'running';
      }
      for (const call of reply.toolCalls) await handleToolCall(call);
      return 'running';
    };

    const handleToolCall = async (call: ChatToolCall): Promise<void> => {
      const args = call.arguments;
      switch (call.name) {
        case 'navigate_to': {
          const x = Number(args.x);
          const y = Number(args.y);
          if (!Number.isFinite(x) || !Number.isFinite(y)) {
            answer(call.id, 'refused: x and y must be numbers');
            return;
          }
          board.goal = { point: { x, y }, source: 'llm', toolCallId: call.id };
          board.path = undefined;
          board.replans = 0;
          return;
        }
        case 'finish':
          answer(call.id, 'finished');
          board.finished = {
            status: 'done',
            summary: String(args.summary ?? ''),
            ...report(board),
          };
          return;
        default: {
          const actionName = TOOL_ACTIONS[call.name];
          if (actionName === undefined) {
            answer(call.id, `unknown tool ${call.name}`);
            return;
          }
          let intent: RobotIntent;
          try {
            intent = parseRobotIntent({ action: actionName, payload: args });
          } catch (error) {
            answer(call.id, `invalid: ${describeError(error).message}`);
            return;
          }
          const outcome = await act(intent);
          const done = intent.action === 'AskHuman' ? 'the operator answered' : 'done';
          answer(
            call.id,
            outcome.ok
              ? `${done}: ${JSON.stringify(outcome.value)}`
              : `refused (${outcome.code}): ${outcome.message}`,
          );
        }
      }
    };

    const root = selector<Board>('rover', [
      sequence('wait out an e-stop', [
        condition('e-stop engaged', (state) => state.observation.estop.engaged),
        action('hold', async (state) => {
          state.path = undefined;
          return 'running';
        }),
      ]),
      sequence('return to dock', [
        condition(
          'battery low',
          (state) =>
            (state.observation.battery ?? 1) < settings.lowBattery &&
            state.goal?.source !== 'dock' &&
            distance(state.observation.pose ?? start, settings.dock) > settings.goalTolerance,
        ),
        action('head for the dock', async (state) => {
          if (state.goal?.source === 'llm')
            endGoal('interrupted: the battery is low, returning to the dock');
          state.goal = { point: settings.dock, source: 'dock', toolCallId: undefined };
          return 'running';
        }),
      ]),
      sequence('stop for an obstacle', [
        condition(
          'something too close while driving directly',
          (state) =>
            state.observation.mode === 'velocity' &&
            (state.observation.nearestAhead ?? Number.POSITIVE_INFINITY) < settings.clearance,
        ),
        action('stop', async () => {
          await act({ action: 'Drive', payload: { linear: 0, angular: 0 } });
          return 'running';
        }),
      ]),
      sequence('pursue the goal', [
        condition('has a goal', (state) => state.goal !== undefined),
        selector('goal', [
          sequence('arrived', [
            condition(
              'at the goal',
              (state) =>
                state.goal !== undefined &&
                state.observation.pose !== null &&
                distance(state.observation.pose, state.goal.point) <= settings.goalTolerance,
            ),
            action('report arrival', async (state) => {
              const goal = state.goal;
              if (goal !== undefined) state.reached.push(goal.point);
              endGoal(`arrived at (${goal?.point.x}, ${goal?.point.y})`);
              return 'success';
            }),
          ]),
          sequence('keep following', [
            condition(
              'following a clear path',
              (state) =>
                state.path !== undefined &&
                state.observation.mode === 'trajectory' &&
                state.observation.pose !== null &&
                pathIsClear(state.observation.pose, remaining(state), state.observation.obstacles, {
                  ...planner,
                  clearance: settings.clearance * 0.6,
                }),
            ),
            action('follow', async () => 'running'),
          ]),
          action('plan and follow', planAndFollow),
        ]),
      ]),
      sequence('patrol', [
        condition('has patrol waypoints', () => settings.patrol.length > 0),
        action('next waypoint', async (state) => {
          const point = settings.patrol[state.patrolIndex % settings.patrol.length];
          state.patrolIndex += 1;
          if (point !== undefined) state.goal = { point, source: 'patrol', toolCallId: undefined };
          return 'running';
        }),
      ]),
      action('ask the LLM', decide),
    ]);

    for (let cycle = 0; cycle < settings.maxCycles; cycle += 1) {
      await root.tick(board);
      if (board.finished !== undefined) return board.finished;
      board.observation = await observe();
    }
    return { status: 'stopped', reason: 'cycle limit', ...report(board) };
  },
});

const TOOL_ACTIONS: Readonly<Record<string, RobotIntent['action']>> = {
  ask_human: 'AskHuman',
  drive: 'Drive',
  move_arm: 'MoveEndEffector',
  trigger_relay: 'TriggerRelay',
  message_peer: 'MessagePeer',
  broadcast_fleet: 'BroadcastFleet',
  post_task: 'PostTask',
};

/** The waypoints not yet passed: from the one nearest the robot onwards. */
function remaining(board: Board): Point[] {
  const path = board.path ?? [];
  const pose = board.observation.pose;
  if (pose === null || path.length === 0) return path;
  let nearest = 0;
  for (let index = 1; index < path.length; index += 1) {
    const point = path[index];
    const best = path[nearest];
    if (point !== undefined && best !== undefined && distance(pose, point) < distance(pose, best))
      nearest = index;
  }
  return path.slice(nearest);
}

function summarise(observation: Observation): string {
  const pose = observation.pose;
  const where =
    pose === null
      ? 'position unknown'
      : `at (${pose.x.toFixed(2)}, ${pose.y.toFixed(2)}), heading ${pose.yaw.toFixed(2)} rad${
          observation.poseStale === true
            ? ` (last known: the sensors have not confirmed it${
                typeof observation.poseAgeMs === 'number'
                  ? ` for ${(observation.poseAgeMs / 1000).toFixed(1)} s`
                  : ''
              }, so motion is refused)`
            : ''
        }`;
  const battery =
    observation.battery === null ? '' : `, battery ${Math.round(observation.battery * 100)}%`;
  const estop = observation.estop.engaged ? `, E-STOP ENGAGED (${observation.estop.reason})` : '';
  return `${where}${battery}${estop}`;
}

function report(board: Board): JsonObject {
  const pose = board.observation.pose;
  return {
    pose: pose === null ? null : { x: pose.x, y: pose.y, yaw: pose.yaw },
    reached: board.reached.map((point) => ({ x: point.x, y: point.y })),
    refusals: board.refusals.map((refusal) => ({ ...refusal })),
    decisions: board.decisions,
  };
}

export type { RoverSettings };
