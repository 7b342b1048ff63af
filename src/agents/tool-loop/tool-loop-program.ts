import type { ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import {
  type AgentContext,
  type AgentProgram,
  type AgentTask,
  type ChatMessage,
  type ChatParameters,
  type ChatResult,
  type ChatToolCall,
  defineAgent,
} from '../../runtime/worker/agent-program.ts';
import { MAX_CHAT_MESSAGES } from '../../services/models/llm-call-parameters.ts';
import { approximateTokens, type TokenCounter, trimMessages } from './context-trimmer.ts';
import { parseJsonAnswer } from './json-answer.ts';
import { type Repetition, RepetitionDetector, repetitionWarning } from './repetition-detector.ts';
import { parseToolLoopSettings, type ToolLoopSettings } from './tool-loop-settings.ts';
import { toolErrorContent, toolResultContent } from './tool-result-content.ts';

/** The tokens and cost of a run's model calls; the cost is null when any call was unpriced. */
export type ToolLoopUsage = {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costMicros: number | null;
};

/** How far a run got, reported with every outcome. */
export type ToolLoopProgress = {
  /** The last text the model gave. */
  readonly answer: string;
  readonly iterations: number;
  /** Model calls plus tool calls. */
  readonly steps: number;
  /** Tool calls made (calls to tools the agent does not have are not made, nor counted). */
  readonly toolCalls: number;
  readonly usage: ToolLoopUsage;
};

/** The result of a tool loop run: what the run returns as its JSON result. */
export type ToolLoopResult = ToolLoopProgress &
  (
    | { readonly status: 'completed'; readonly data?: JsonObject }
    | { readonly status: 'limit'; readonly reason: 'max_steps' | 'max_iterations' }
    | {
        readonly status: 'stuck';
        readonly reason: 'repeated_tool_call' | 'repeated_text';
        readonly repeated: JsonObject;
      }
    | {
        readonly status: 'failed';
        readonly reason: 'invalid_result' | 'unverified';
        readonly error: { readonly code: ErrorCode; readonly message: string };
      }
  );

/**
 * A program's check of the model's final answer (the coding agent runs the tests): accept it
 * (with data for the result), send the model back to work with a message, or give up.
 */
export type AnswerReview =
  | { readonly verdict: 'accept'; readonly data?: JsonObject }
  | { readonly verdict: 'retry'; readonly message: string }
  | { readonly verdict: 'give-up'; readonly message: string };

/** What a program built on the tool loop can add to it. */
export interface ToolLoopExtensions {
  /** Called when the model answers without a tool call (and no result schema is set). */
  readonly review?: (context: AgentContext, answer: string) => Promise<AnswerReview>;
}

/**
 * Errors of a tool call that end the run instead of going back to the model: it cannot
 * recover from them, and a resumed run must meet them again (an approval, once granted, lets
 * the replayed call through). The node's own troubles (its storage, the agent's state, a run
 * it no longer knows) are among them: such a refusal is not journaled, so a model that went
 * on past it would leave a history no replay reproduces, and a step silently undone.
 */
/**
 * Errors that end or suspend the run rather than go back to the model as a result: a run that
 * waits for a human (`KEEL_APPROVAL_REQUIRED`) suspends, a cancelled or stopping run ends.
 */
export const FATAL_TOOL_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KEEL_IDENTITY_UNKNOWN',
  'KEEL_AGENT_NOT_RUNNING',
  'KEEL_NOT_READY',
  'KEEL_STORAGE_UNAVAILABLE',
  'KEEL_STORAGE_CORRUPT',
  'KEEL_STORAGE_FULL',
  'KEEL_BUDGET_EXHAUSTED',
  'KEEL_ABORTED',
  'KEEL_RUN_CANCELLED',
  'KEEL_SHUTTING_DOWN',
  'KEEL_RUN_LIMIT_REACHED',
  'KEEL_REPLAY_MISMATCH',
  'KEEL_RUN_ATTEMPTS_EXHAUSTED',
  'KEEL_APPROVAL_REQUIRED',
  'KEEL_WORKER_PROTOCOL',
]);

interface LoopState {
  readonly messages: ChatMessage[];
  answer: string;
  iterations: number;
  steps: number;
  toolCalls: number;
  inputTokens: number;
  outputTokens: number;
  costMicros: number | null;
}

function progressOf(state: LoopState): ToolLoopProgress {
  return {
    answer: state.answer,
    iterations: state.iterations,
    steps: state.steps,
    toolCalls: state.toolCalls,
    usage: {
      inputTokens: state.inputTokens,
      outputTokens: state.outputTokens,
      costMicros: state.costMicros,
    },
  };
}

function systemPromptOf(settings: ToolLoopSettings): string {
  if (settings.resultSchema === undefined) return settings.system;
  return (
    `${settings.system}\n\nYour final answer must be a single JSON object, and nothing else, ` +
    `that matches this JSON Schema:\n${JSON.stringify(settings.resultSchema)}`
  );
}

/**
 * The task as the first user message. Its input goes as compact JSON: indented, a deeply
 * nested input grows with its depth (about 4 times for a submission's largest), and every
 * chat of the run carries it, counted against the conversation's budget and the intent limit.
 */
function taskMessageOf(task: AgentTask): string {
  if (task.input === undefined) return task.prompt;
  return `${task.prompt}\n\nInput (JSON):\n${JSON.stringify(task.input)}`;
}

function assistantMessageOf(turn: ChatResult): ChatMessage {
  return turn.toolCalls.length === 0
    ? { role: 'assistant', content: turn.text }
    : { role: 'assistant', content: turn.text, toolCalls: turn.toolCalls };
}

function recordTurn(state: LoopState, turn: ChatResult): void {
  state.iterations += 1;
  state.steps += 1;
  state.answer = turn.text;
  state.inputTokens += turn.usage.inputTokens;
  state.outputTokens += turn.usage.outputTokens;
  state.costMicros =
    state.costMicros === null || turn.usage.costMicros === null
      ? null
      : state.costMicros + turn.usage.costMicros;
}

/** Counts each message once, however many turns it is sent on. */
function memoisedTokenCounter(): TokenCounter {
  const counted = new WeakMap<ChatMessage, number>();
  return (message) => {
    let tokens = counted.get(message);
    if (tokens === undefined) {
      tokens = approximateTokens(message);
      counted.set(message, tokens);
    }
    return tokens;
  };
}

interface TurnOptions {
  readonly first: boolean;
  /** The turn that must give the JSON answer: tools off, the result schema as the format. */
  readonly structured: boolean;
}

function chatParametersOf(
  context: AgentContext,
  settings: ToolLoopSettings,
  messages: readonly ChatMessage[],
  countTokens: TokenCounter,
  options: TurnOptions,
): ChatParameters {
  const { toolChoice, resultSchema, maxOutputTokens } = settings;
  const tools = context.tools;
  // A forced call ('required' or a named tool) holds for the first turn only: on every turn
  // it would leave the model no way to finish.
  const forcing = toolChoice === 'required' || typeof toolChoice === 'object';
  const choice = options.structured ? 'none' : forcing && !options.first ? 'auto' : toolChoice;
  const structured =
    resultSchema !== undefined && (options.structured || tools.length === 0)
      ? { type: 'json-schema' as const, name: 'result', schema: resultSchema }
      : undefined;
  return {
    messages: trimMessages(messages, settings.contextTokens, countTokens, MAX_CHAT_MESSAGES),
    ...(tools.length > 0 ? { tools } : {}),
    ...(tools.length > 0 && choice !== undefined ? { toolChoice: choice } : {}),
    ...(structured === undefined ? {} : { responseFormat: structured }),
    ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
  };
}

/** Makes one tool call and returns the tool message that answers it. */
async function callTool(
  context: AgentContext,
  toolNames: ReadonlySet<string>,
  call: ChatToolCall,
  state: LoopState,
): Promise<ChatMessage> {
  const reply = (content: string): ChatMessage => ({
    role: 'tool',
    toolCallId: call.id,
    name: call.name,
    content,
  });
  if (!toolNames.has(call.name)) {
    const known = [...toolNames].join(', ') || 'none';
    return reply(
      toolErrorContent(
        'KEEL_NOT_FOUND',
        `there is no tool named ${call.name}; the tools you may call are: ${known}`,
      ),
    );
  }
  state.steps += 1;
  state.toolCalls += 1;
  try {
    return reply(toolResultContent(await context.callTool(call.name, call.arguments)));
  } catch (error) {
    if (!isKeelError(error) || FATAL_TOOL_ERRORS.has(error.code)) throw error;
    return reply(toolErrorContent(error.code, error.message));
  }
}

function stuckResult(state: LoopState, repetition: Repetition): ToolLoopResult {
  return repetition.kind === 'tool-call'
    ? {
        status: 'stuck',
        reason: 'repeated_tool_call',
        repeated: { name: repetition.name, arguments: repetition.arguments },
        ...progressOf(state),
      }
    : {
        status: 'stuck',
        reason: 'repeated_text',
        repeated: { text: repetition.text },
        ...progressOf(state),
      };
}

/**
 * Runs the standard tool loop, with a program's extensions (see {@link ToolLoopExtensions}).
 *
 * @example
 * ```ts
 * const result = await runToolLoop(context, { review: async () => ({ verdict: 'accept' }) });
 * ```
 */
export async function runToolLoop(
  context: AgentContext,
  extensions: ToolLoopExtensions = {},
): Promise<ToolLoopResult> {
  const settings = parseToolLoopSettings(context.settings);
  const model = context.model ?? settings.model;
  if (model === undefined) {
    throw new KeelError(
      'KEEL_LLM_NOT_CONFIGURED',
      'the agent names no model: set models.default in its manifest',
      { details: { agent: context.agent.name } },
    );
  }
  const toolNames = new Set(context.tools.map((tool) => tool.name));
  const { toolChoice, resultSchema } = settings;
  if (typeof toolChoice === 'object' && !toolNames.has(toolChoice.name)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `tool-loop settings field toolChoice names ${toolChoice.name}, which is not one of the agent's tools`,
      { details: { field: 'toolChoice' } },
    );
  }

  const state: LoopState = {
    messages: [
      { role: 'system', content: systemPromptOf(settings) },
      { role: 'user', content: taskMessageOf(context.task) },
    ],
    answer: '',
    iterations: 0,
    steps: 0,
    toolCalls: 0,
    inputTokens: 0,
    outputTokens: 0,
    costMicros: 0,
  };
  const countTokens = memoisedTokenCounter();
  const detector = new RepetitionDetector(settings.repeatLimit);
  const limit = (reason: 'max_steps' | 'max_iterations'): ToolLoopResult => ({
    status: 'limit',
    reason,
    ...progressOf(state),
  });
  let correcting = false;

  for (;;) {
    context.signal.throwIfAborted();
    if (state.iterations >= settings.maxIterations) return limit('max_iterations');
    if (state.steps >= settings.maxSteps) return limit('max_steps');
    const turn = await context.chat(
      model,
      chatParametersOf(context, settings, state.messages, countTokens, {
        first: state.iterations === 0,
        structured: correcting,
      }),
    );
    recordTurn(state, turn);
    state.messages.push(assistantMessageOf(turn));

    if (turn.toolCalls.length === 0 || correcting) {
      if (resultSchema === undefined) {
        const review = await extensions.review?.(context, turn.text);
        if (review === undefined || review.verdict === 'accept') {
          return {
            status: 'completed',
            ...(review?.data === undefined ? {} : { data: review.data }),
            ...progressOf(state),
          };
        }
        if (review.verdict === 'give-up') {
          return {
            status: 'failed',
            reason: 'unverified',
            error: { code: 'KEEL_RUN_FAILED', message: review.message },
            ...progressOf(state),
          };
        }
        state.messages.push({ role: 'user', content: review.message });
        continue;
      }
      const parsed = parseJsonAnswer(turn.text, resultSchema);
      if (parsed.ok) return { status: 'completed', data: parsed.data, ...progressOf(state) };
      if (correcting) {
        return {
          status: 'failed',
          reason: 'invalid_result',
          error: {
            code: 'KEEL_INVALID_ARGUMENT',
            message: `the final answer does not match the result schema: ${parsed.problem}`,
          },
          ...progressOf(state),
        };
      }
      // One corrective turn: say what is wrong and ask for the JSON alone.
      correcting = true;
      state.messages.push({
        role: 'user',
        content: `Your final answer is not valid: ${parsed.problem}. Reply with only the JSON object that matches the result schema, with no other text.`,
      });
      continue;
    }

    const verdict = detector.observe(turn);
    if (verdict.kind === 'stuck') return stuckResult(state, verdict.repetition);
    for (const call of turn.toolCalls) {
      context.signal.throwIfAborted();
      if (toolNames.has(call.name) && state.steps >= settings.maxSteps) return limit('max_steps');
      state.messages.push(await callTool(context, toolNames, call, state));
    }
    if (verdict.kind === 'warn') {
      state.messages.push({ role: 'user', content: repetitionWarning(verdict.repetition) });
      await context.log('warn', 'the model is repeating itself; asked it to change approach', {
        repetition: verdict.repetition.kind,
        count: verdict.repetition.count,
      });
    }
  }
}

/**
 * The standard tool-calling loop that built-in agents run: the model is given the task and
 * the agent's tools, each tool call it makes is run (one at a time, in order) and its result
 * sent back, until the model answers without a tool call. Settings (`program.settings`) are
 * described by {@link parseToolLoopSettings}.
 *
 * The run's JSON result is a {@link ToolLoopResult}: `completed` with the answer (and `data`
 * when a result schema is set), or `limit`, `stuck` or `failed` with a reason, always with
 * the steps taken and the usage. Tool errors go back to the model as tool results so that it
 * can recover, except those no model can recover from (budget exhausted, cancelled, shutting
 * down, approval required, …), which end the run. Every effect is a syscall and nothing else
 * varies, so a resumed run replays the same calls in the same order.
 *
 * @example
 * ```ts
 * // agents/researcher/program.ts
 * export { toolLoopProgram as default } from '../../src/agents/tool-loop/tool-loop-program.ts';
 * ```
 */
export const toolLoopProgram: AgentProgram = defineAgent({
  name: 'tool-loop',
  run: (context: AgentContext): Promise<JsonValue> => runToolLoop(context),
});
