import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { ToolDescriptor } from '../../runtime/worker/agent-program.ts';

const number = { type: 'number' } as const;
const text = { type: 'string' } as const;

function tool(
  name: string,
  description: string,
  properties: JsonObject,
  required: string[],
): ToolDescriptor {
  return {
    name,
    description,
    parameters: { type: 'object', properties, required, additionalProperties: false },
  };
}

/** The tools the rover's LLM decides with: goals and questions; the reflexes do the rest. */
export const ROVER_TOOLS: readonly ToolDescriptor[] = [
  tool(
    'navigate_to',
    'Drive to a point in the world frame (metres); the rover plans around obstacles. Answered when it arrives or gives up.',
    { x: number, y: number },
    ['x', 'y'],
  ),
  tool(
    'drive',
    'Set the base velocity directly for a moment (m/s, rad/s). Safety rules may refuse it.',
    { linear: number, angular: number },
    ['linear', 'angular'],
  ),
  tool(
    'move_arm',
    'Move the end effector to a point in the arm frame (metres).',
    { x: number, y: number, z: number },
    ['x', 'y', 'z'],
  ),
  tool(
    'trigger_relay',
    'Switch a relay on or off.',
    { relayId: text, state: { type: 'boolean' } },
    ['relayId', 'state'],
  ),
  tool(
    'ask_human',
    'Ask the operator a question and wait for the answer (the body stays safe meanwhile).',
    { question: text, contextImageId: text },
    ['question'],
  ),
  tool('message_peer', 'Send a message to another robot.', { robotId: text, message: text }, [
    'robotId',
    'message',
  ]),
  tool('broadcast_fleet', 'Send a message to every robot.', { message: text }, ['message']),
  tool('post_task', 'Post a task on the fleet board.', { title: text, description: text }, [
    'title',
    'description',
  ]),
  tool('finish', 'End the mission with a short summary.', { summary: text }, ['summary']),
];

export const ROVER_SYSTEM_PROMPT = [
  'You are the mission brain of a ground robot (a rover). You decide goals and answer questions;',
  'a reflex layer plans paths, avoids obstacles, stops for anything too close and returns to the',
  'dock when the battery is low. Every motion passes a safety kernel that may refuse it; a refusal',
  'comes back to you as the tool result. Use navigate_to for places, ask_human when unsure, and',
  'finish when the mission is done.',
].join(' ');
