import type { AgentProgram } from '../runtime/worker/agent-program.ts';
import { coderProgram } from './coder/coder-program.ts';
import { roverProgram } from './rover/rover-program.ts';
import { toolLoopProgram } from './tool-loop/tool-loop-program.ts';

/**
 * The agent programs every node ships, by the name a manifest's `program.builtin` uses.
 *
 * @example
 * ```ts
 * BUILTIN_PROGRAMS.get('tool-loop');
 * ```
 */
export const BUILTIN_PROGRAMS: ReadonlyMap<string, AgentProgram> = new Map([
  [toolLoopProgram.name, toolLoopProgram],
  [coderProgram.name, coderProgram],
  [roverProgram.name, roverProgram],
]);
