import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import {
  type AgentContext,
  type AgentProgram,
  defineAgent,
} from '../../runtime/worker/agent-program.ts';
import { type AnswerReview, runToolLoop } from '../tool-loop/tool-loop-program.ts';
import { DEFAULT_CODER_SYSTEM_PROMPT } from './coder-prompt.ts';

/** How many times the agent may claim to be done and see verification fail before it stops. */
const MAX_VERIFICATIONS = 5;
/** The most of the verification output the model is shown after a failure. */
const FAILURE_TAIL_CHARACTERS = 4000;

function tail(text: unknown): string {
  const value = typeof text === 'string' ? text : '';
  return value.length > FAILURE_TAIL_CHARACTERS ? value.slice(-FAILURE_TAIL_CHARACTERS) : value;
}

/**
 * The coding agent. It works on its workspace (a git repository) with the file, shell and git
 * tools through the standard tool loop, and never claims success on its own word: when the
 * model says it is done, the program runs the workspace's verification command (`verify`, in
 * the sandbox). If it fails, the model gets the output and goes back to work; if it passes,
 * the program commits a checkpoint on the agent's own branch (`git_checkpoint`) and the run
 * completes with `data: { verified: true, commit, branch }`. After five failed verifications
 * it stops with `status: 'failed', reason: 'unverified'`. Budgets and step limits stop it like
 * any tool loop; a `kill -9` resumes it by replay.
 *
 * Settings are the tool loop's; `system` defaults to a prompt for coding work. The manifest
 * must list `verify` and `git_checkpoint` among its tools, with the capabilities to call them.
 *
 * @example
 * ```ts
 * // manifest: program: { builtin: 'coder' }, workspace: { path: '/srv/app', verify: 'npm test' }
 * ```
 */
export const coderProgram: AgentProgram = defineAgent({
  name: 'coder',
  run: async (context: AgentContext): Promise<JsonValue> => {
    let verifications = 0;
    const review = async (): Promise<AnswerReview> => {
      verifications += 1;
      const result = (await context.callTool('verify', {})) as JsonObject;
      if (result.passed === true) {
        const checkpoint = (await context.callTool('git_checkpoint', {
          message: `keel coder: ${String(context.task.prompt).slice(0, 200)}`,
        })) as JsonObject;
        return {
          verdict: 'accept',
          data: {
            verified: true,
            command: result.command ?? null,
            branch: checkpoint.branch ?? null,
            commit: checkpoint.commit ?? null,
          },
        };
      }
      const output = `${tail(result.stdout)}\n${tail(result.stderr)}`.trim();
      if (verifications >= MAX_VERIFICATIONS) {
        return {
          verdict: 'give-up',
          message: `verification still fails after ${verifications} attempts`,
        };
      }
      return {
        verdict: 'retry',
        message: `Verification (${String(result.command)}) failed with exit code ${String(result.exitCode)}. You are not done. Output:\n${output}`,
      };
    };
    const settings = { system: DEFAULT_CODER_SYSTEM_PROMPT, ...context.settings };
    return runToolLoop({ ...context, settings }, { review });
  },
});
