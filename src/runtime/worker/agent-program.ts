import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type {
  ChatMessage,
  FinishReason,
  ResponseFormat,
  ToolCall,
  ToolChoice,
} from '../../services/models/provider/model-provider.ts';
import type { ToolDescription } from '../../services/tools/tool-registry.ts';

/** What a run was asked to do: the prompt, and structured input where the caller has some. */
export interface AgentTask {
  readonly prompt: string;
  readonly input?: JsonObject;
}

/** A tool the agent may call, as the model is shown it: name, description, JSON-Schema arguments. */
export type ToolDescriptor = ToolDescription;

/** A message and a tool call of an `llm.chat` call: the model layer's own wire shapes. */
export type { ChatMessage, ToolCall as ChatToolCall };

/** The params of an `llm.chat` syscall besides the model alias. */
export interface ChatParameters {
  readonly messages: readonly ChatMessage[];
  readonly tools?: readonly ToolDescriptor[];
  readonly toolChoice?: ToolChoice;
  readonly responseFormat?: ResponseFormat;
  readonly maxOutputTokens?: number;
  readonly temperature?: number;
}

/** What an `llm.chat` syscall returns. */
export interface ChatResult {
  /**
   * The call's sequence number in its run: a later call whose messages extend this one's may
   * send only the new ones with `continues: seq` (`AgentContext.chat` does so by itself).
   */
  readonly seq?: number;
  readonly text: string;
  readonly toolCalls: readonly ToolCall[];
  readonly finishReason: FinishReason;
  readonly model: string;
  readonly provider: string;
  readonly usage: {
    readonly inputTokens: number;
    readonly outputTokens: number;
    readonly costMicros: number | null;
  };
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * Everything an agent program can do. It runs inside the worker process, which has no network,
 * no secrets and no files of its own: every effect is a syscall the kernel checks, journals and
 * audits. A resumed run replays: syscalls already recorded return their recorded result
 * without running again, so a program must reach the outside world, time and randomness only
 * through this context (never `Date.now()` or `Math.random()`).
 */
export interface AgentContext {
  readonly runId: string;
  readonly agent: { readonly id: string; readonly name: string; readonly version: string };
  readonly task: AgentTask;
  /** The tools this agent may call (its manifest allowlist, as the node describes them). */
  readonly tools: readonly ToolDescriptor[];
  /** The program's settings from the manifest (`program.settings`). */
  readonly settings: JsonObject;
  /** The model alias the manifest prefers (`models.default`), when it names one. */
  readonly model: string | undefined;
  /** Aborted when the run is cancelled or the worker is stopping. */
  readonly signal: AbortSignal;
  /** Any syscall. The kernel assigns its sequence number in the order the program calls. */
  syscall(kind: string, resource: string, params?: JsonObject): Promise<JsonValue>;
  /**
   * `llm.chat` with the alias as resource. When the messages begin with exactly the messages of
   * the run's previous chat (the same JSON), only the ones after them are sent, with
   * `continues`; the model still gets them all. The node that no longer holds that
   * conversation (after a restart) answers `KEEL_CONVERSATION_UNKNOWN`, and the whole
   * conversation is sent instead, as one more syscall.
   */
  chat(model: string, parameters: ChatParameters): Promise<ChatResult>;
  /** `tool.call` of a named tool. */
  callTool(name: string, args: JsonObject): Promise<JsonValue>;
  /** `clock.now`: epoch milliseconds, the same on replay. */
  now(): Promise<number>;
  /** `random`: an integer in [min, max), the same on replay. */
  randomInt(min: number, max: number): Promise<number>;
  /** `log`: a line in the node's log tagged with the run. */
  log(level: LogLevel, message: string, fields?: JsonObject): Promise<void>;
}

/** An agent program: what runs in the worker for each run of the agent. */
export interface AgentProgram {
  readonly name: string;
  /** Returns the run's result (JSON); throwing fails the run with that error. */
  run(context: AgentContext): Promise<JsonValue>;
}

/**
 * Defines an agent program. A module named by a manifest's `program.module` exports one as its
 * default export.
 *
 * @example
 * ```ts
 * export default defineAgent({
 *   name: 'greeter',
 *   async run(context) {
 *     const answer = await context.chat('default', { messages: [{ role: 'user', content: context.task.prompt }] });
 *     return { greeting: answer.text };
 *   },
 * });
 * ```
 */
export function defineAgent(definition: {
  readonly name: string;
  run(context: AgentContext): Promise<JsonValue>;
}): AgentProgram {
  if (typeof definition.name !== 'string' || definition.name.length === 0) {
    throw new TypeError('defineAgent needs a name');
  }
  if (typeof definition.run !== 'function') {
    throw new TypeError('defineAgent needs a run function');
  }
  return Object.freeze({ name: definition.name, run: definition.run.bind(definition) });
}

/** Whether a module export is an agent program (a module path names one as its default). */
export function isAgentProgram(value: unknown): value is AgentProgram {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { name?: unknown }).name === 'string' &&
    typeof (value as { run?: unknown }).run === 'function'
  );
}
