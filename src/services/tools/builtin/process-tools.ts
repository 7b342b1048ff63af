import { z } from 'zod';
import { startSandboxedCommand } from '../../../platform/sandbox/command-sandbox.ts';
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import type { AgentWorkspaces } from '../agent-workspaces.ts';
import type {
  ProcessLauncher,
  ProcessSupervisor,
  ProcessView,
} from '../processes/process-supervisor.ts';
import { redactSecretsAndPii } from '../secrets/secret-scanner.ts';
import { defineTool, type ToolDefinition } from '../tool-registry.ts';
import {
  acceptedCommand,
  type CommandToolSettings,
  commandSandboxOptions,
} from './command-tools.ts';

/** Signals an agent may send to its own processes. */
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGKILL'] as const;
const DEFAULT_LOG_PAGE = 16_384;
const MAX_LOG_PAGE = 65_536;
const processId = z.string().regex(/^proc_[a-f0-9]{12}$/, 'is not a process id (proc_…)');

/**
 * The tools for long-running processes of the agent's workspace (see `ProcessSupervisor`):
 * `process_start` (a command line the shell policy and the grant's `commands` accept, with an
 * optional ready text as its health check and a restart policy), `process_list`,
 * `process_logs` (paged by byte offset, secrets and PII redacted), `process_signal` and
 * `process_stop`. An agent names its processes by Keel's id and reaches no other's.
 *
 * @example
 * ```ts
 * const registry = new ToolRegistry(createProcessTools(supervisor));
 * ```
 */
export function createProcessTools(supervisor: ProcessSupervisor): ToolDefinition<never>[] {
  const start = defineTool({
    name: 'process_start',
    description:
      'Starts a long-running command (a server, a watcher) in the workspace sandbox and returns its id. Give readyText to wait until the process prints it; restart restarts it when it ends (on-failure or always).',
    sideEffects: true,
    input: z.strictObject({
      command: z.string().min(1).max(8192),
      name: z.string().min(1).max(64).optional(),
      readyText: z.string().min(1).max(256).optional(),
      readyTimeoutMs: z.number().int().min(100).max(600_000).optional(),
      restart: z.enum(['never', 'on-failure', 'always']).optional(),
      maxRestarts: z.number().int().min(0).max(10).optional(),
    }),
    execute: async (input, context) =>
      processJson(
        await supervisor.start({
          agentId: context.agentId,
          command: input.command,
          argv: acceptedCommand(input.command),
          ...(input.name === undefined ? {} : { name: input.name }),
          ...(input.readyText === undefined ? {} : { readyText: input.readyText }),
          ...(input.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: input.readyTimeoutMs }),
          ...(input.restart === undefined ? {} : { restart: input.restart }),
          ...(input.maxRestarts === undefined ? {} : { maxRestarts: input.maxRestarts }),
        }),
      ),
    effectOf: (value) => processEffect(value),
  });
  const list = defineTool({
    name: 'process_list',
    description: 'Lists your processes: id, command, state, restarts and how they ended.',
    input: z.strictObject({}),
    execute: async (_input, context) => ({
      processes: supervisor.list(context.agentId).map(processJson),
    }),
  });
  const logs = defineTool({
    name: 'process_logs',
    description:
      "Reads a process's output (stdout and stderr as they came) from a byte offset; pass the answer's nextOffset to read on. Only the newest output is kept: dropped says how much was lost.",
    input: z.strictObject({
      id: processId,
      offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      limit: z.number().int().min(1).max(MAX_LOG_PAGE).optional(),
    }),
    execute: async (input, context) => {
      const page = supervisor.logs(
        context.agentId,
        input.id,
        input.offset ?? 0,
        input.limit ?? DEFAULT_LOG_PAGE,
      );
      return {
        text: redactSecretsAndPii(page.text).text,
        offset: page.offset,
        nextOffset: page.nextOffset,
        dropped: page.dropped,
        total: page.total,
        state: supervisor.show(context.agentId, input.id).state,
      };
    },
  });
  const signal = defineTool({
    name: 'process_signal',
    description: 'Sends a signal to one of your processes (and the processes it started).',
    sideEffects: true,
    input: z.strictObject({ id: processId, signal: z.enum(SIGNALS) }),
    execute: async (input, context) => ({
      id: input.id,
      signal: input.signal,
      delivered: await supervisor.signal(context.agentId, input.id, input.signal),
    }),
  });
  const stop = defineTool({
    name: 'process_stop',
    description:
      'Stops one of your processes for good: SIGTERM, then SIGKILL if it has not ended within graceMs.',
    sideEffects: true,
    input: z.strictObject({
      id: processId,
      graceMs: z.number().int().min(0).max(60_000).optional(),
    }),
    execute: async (input, context) =>
      processJson(
        await supervisor.stop(
          context.agentId,
          input.id,
          input.graceMs === undefined ? {} : { graceMs: input.graceMs },
        ),
      ),
    effectOf: (value) => processEffect(value),
  });
  return [start, list, logs, signal, stop] as unknown as ToolDefinition<never>[];
}

/**
 * Starts agents' processes in the command sandbox of their workspace, with the command tools'
 * caps; the output goes to the supervisor's log, not into the result.
 *
 * @example
 * ```ts
 * const supervisor = new ProcessSupervisor(sandboxedProcessLauncher(workspaces, settings), processSettings);
 * ```
 */
export function sandboxedProcessLauncher(
  workspaces: AgentWorkspaces,
  settings: CommandToolSettings,
): ProcessLauncher {
  return async ({ agentId, argv, lifetimeMs, onOutput }) =>
    startSandboxedCommand({
      ...(await commandSandboxOptions(workspaces, settings, agentId, argv)),
      timeoutMs: lifetimeMs,
      // The supervisor's log keeps the output; the result needs none of it.
      maxOutputBytes: 0,
      onOutput,
    });
}

function processJson(view: ProcessView): JsonObject {
  return { ...view, sandbox: [...view.sandbox] };
}

function processEffect(value: JsonValue): JsonObject | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const object = value as JsonObject;
  return { process: object.id ?? null, state: object.state ?? null };
}
