import { z } from 'zod';
import type { ExecutionContext, SyscallExecutor } from '../../kernel/gate/syscall.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';

/**
 * A tool an agent can call with `tool.call`: a name, what it does, a schema for its arguments
 * (validated before `execute` runs) and the execution itself, which gets the call's
 * idempotency key so that a replayed call can do its effect once.
 *
 * @example
 * ```ts
 * const echo = defineTool({ name: 'echo', description: 'Repeats text', input: z.strictObject({ text: z.string() }), execute: async ({ text }) => text });
 * ```
 */
export interface ToolDefinition<Input = unknown> {
  readonly name: string;
  readonly description: string;
  readonly input: z.ZodType<Input>;
  readonly timeoutMs?: number;
  /** Whether a call changes anything (a file, a repository, a process); default false. */
  readonly sideEffects?: boolean;
  /** Whether its result brings content from outside the agent's workspace (a web page). */
  readonly untrustedContent?: boolean;
  /** Whether every call needs a human's approval for agents below `trusted`. */
  readonly requiresApproval?: boolean;
  execute(input: Input, context: ExecutionContext): Promise<JsonValue>;
  /** What the call changed, for its audit entry (computed from its result). */
  effectOf?(value: JsonValue): JsonObject | undefined;
}

/** What the model is shown of a tool. */
export interface ToolDescription {
  readonly name: string;
  readonly description: string;
  readonly parameters: JsonObject;
}

const TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/**
 * Defines a tool (types its `execute` from its input schema).
 *
 * @example
 * ```ts
 * defineTool({ name: 'now', description: 'The time', input: z.strictObject({}), execute: async () => Date.now() });
 * ```
 */
export function defineTool<Input>(definition: ToolDefinition<Input>): ToolDefinition<Input> {
  if (!TOOL_NAME.test(definition.name)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `tool name ${definition.name} is not valid`);
  }
  return definition;
}

/**
 * The node's tools by name, and the `tool.call` executor over them: the intent's resource is
 * the tool name, its params the tool's arguments. Unknown tools and invalid arguments are refused
 * with a typed error before anything runs.
 *
 * @example
 * ```ts
 * const tools = new ToolRegistry([echo]);
 * kernel.registerExecutor(tools.executor(30_000));
 * ```
 */
export class ToolRegistry {
  readonly #tools = new Map<string, ToolDefinition>();

  constructor(tools: readonly ToolDefinition<never>[] = []) {
    for (const tool of tools) this.register(tool);
  }

  register<Input>(tool: ToolDefinition<Input>): void {
    if (this.#tools.has(tool.name)) {
      throw new KeelError('KEEL_CONFLICT', `a tool named ${tool.name} is registered already`);
    }
    this.#tools.set(tool.name, tool as unknown as ToolDefinition);
  }

  names(): readonly string[] {
    return [...this.#tools.keys()].sort();
  }

  /** A tool by name, or `undefined`. */
  get(name: string): ToolDefinition | undefined {
    return this.#tools.get(name);
  }

  /** The descriptions of the named tools that exist (unknown names are left out). */
  describe(names: readonly string[]): readonly ToolDescription[] {
    const descriptions: ToolDescription[] = [];
    for (const name of names) {
      const tool = this.#tools.get(name);
      if (tool === undefined) continue;
      const schema = z.toJSONSchema(tool.input, { unrepresentable: 'any' }) as JsonObject;
      const { $schema: _ignored, ...parameters } = schema;
      descriptions.push({ name: tool.name, description: tool.description, parameters });
    }
    return descriptions;
  }

  /**
   * The `tool.call` executor. `markUntrusted` is told (and awaited) when a tool that brings
   * untrusted content succeeded in a run, before the gate journals its result.
   */
  executor(
    defaultTimeoutMs: number,
    markUntrusted?: (runId: string, tool: string) => Promise<void>,
  ): SyscallExecutor {
    return {
      specificationVersion: 'v1',
      kind: 'tool.call',
      timeoutMs: defaultTimeoutMs,
      estimate: () => ({ calls: 1 }),
      doExecute: async (intent, context) => {
        const tool = this.#tools.get(intent.resource);
        if (tool === undefined) {
          throw new KeelError('KEEL_NOT_FOUND', `there is no tool named ${intent.resource}`, {
            details: { tool: intent.resource },
          });
        }
        const parsed = tool.input.safeParse(intent.params);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const field = issue?.path.join('.') || 'arguments';
          throw new KeelError(
            'KEEL_INVALID_ARGUMENT',
            `${tool.name} arguments ${field}: ${issue?.message ?? 'invalid'}`,
            { details: { tool: tool.name, field } },
          );
        }
        const value = await tool.execute(parsed.data, context);
        if (tool.untrustedContent === true && context.runId !== undefined) {
          await markUntrusted?.(context.runId, tool.name);
        }
        const effect = tool.effectOf?.(value);
        return effect === undefined ? { value } : { value, effect };
      },
    };
  }
}
