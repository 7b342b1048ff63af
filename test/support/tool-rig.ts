import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from '../../src/kernel/gate/syscall.ts';
import { detectSandbox, type SandboxReport } from '../../src/platform/sandbox/detect-sandbox.ts';
import type { JsonObject, JsonValue } from '../../src/platform/storage/ports/json-value.ts';
import { AgentWorkspaces } from '../../src/services/tools/agent-workspaces.ts';
import type { CommandToolSettings } from '../../src/services/tools/builtin/command-tools.ts';
import type { ToolRegistry } from '../../src/services/tools/tool-registry.ts';
import { silentLogger } from './silent-logger.ts';
import { temporaryDirectory } from './temporary-directory.ts';

const run = promisify(execFile);
/** Commands run as the workspace's owner, never as root: tests give workspaces to nobody. */
export const UNPRIVILEGED = 65534;
const SEARCH_PATH = '/usr/local/bin:/usr/bin:/bin';

/** A temporary folder of workspaces (one per agent) that the command sandbox can run in. */
export interface ToolRig extends AsyncDisposable {
  readonly workspaces: AgentWorkspaces;
  readonly settings: CommandToolSettings;
  /** Makes (and assigns) the agent's workspace, with the given files; a git repository if asked. */
  workspace(
    agentId: string,
    files: Readonly<Record<string, string>>,
    options?: { readonly git?: boolean; readonly verify?: string },
  ): Promise<string>;
  /** Calls a tool through the registry's `tool.call` executor, as the gate does. */
  call(
    tools: ToolRegistry,
    agentId: string,
    tool: string,
    args: JsonObject,
    runId?: string,
  ): Promise<JsonValue>;
}

/**
 * The real command sandbox of this host (detected, required: a missing layer fails the test)
 * over temporary workspaces owned by an unprivileged user.
 *
 * @example
 * ```ts
 * await using rig = await createToolRig();
 * const root = await rig.workspace('agent_1', { 'a.txt': 'x' });
 * ```
 */
export async function createToolRig(
  overrides: Partial<CommandToolSettings> = {},
): Promise<ToolRig> {
  const directory = await temporaryDirectory('keel-tools-');
  await chmod(directory.path, 0o755);
  const report: SandboxReport = await detectSandbox({ searchPath: SEARCH_PATH });
  const workspaces = new AgentWorkspaces();
  const settings: CommandToolSettings = {
    report: async () => report,
    searchPath: SEARCH_PATH,
    required: true,
    timeoutMs: 20_000,
    maxOutputBytes: 65_536,
    memoryBytes: 512 * 1024 * 1024,
    maxProcesses: 128,
    protectedBranches: ['main', 'release/*'],
    ...overrides,
  };
  let calls = 0;
  return {
    workspaces,
    settings,
    async workspace(agentId, files, options = {}) {
      const root = join(directory.path, agentId);
      await mkdir(root);
      for (const [name, content] of Object.entries(files)) {
        await mkdir(dirname(join(root, name)), { recursive: true });
        await writeFile(join(root, name), content);
      }
      if (options.git === true) {
        const git = (...args: string[]) =>
          run('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', ...args], {
            cwd: root,
          });
        await git('init', '--quiet', '--initial-branch=main');
        await git('add', '.');
        await git('commit', '--quiet', '--allow-empty', '-m', 'initial');
      }
      if (process.getuid?.() === 0) {
        await run('chown', ['-R', `${UNPRIVILEGED}:${UNPRIVILEGED}`, root]);
      }
      await workspaces.assign(
        agentId,
        options.verify === undefined ? { path: root } : { path: root, verify: options.verify },
      );
      return root;
    },
    async call(tools, agentId, tool, args, runId) {
      calls += 1;
      const context = toolCallContext(agentId, runId, calls);
      const executor = tools.executor(60_000);
      const result = await executor.doExecute(
        { kind: 'tool.call', resource: tool, params: args },
        context,
      );
      return result.value;
    },
    async [Symbol.asyncDispose]() {
      await directory[Symbol.asyncDispose]();
    },
  };
}

/**
 * The context the gate gives an executor, for calling one directly: the run's step is `seq`
 * (none outside a run), the idempotency key is derived from it.
 *
 * @example
 * ```ts
 * await executor.doExecute(intent, toolCallContext('agent_1', 'run_1', 3));
 * ```
 */
export function toolCallContext(
  agentId: string,
  runId: string | undefined,
  seq: number,
): ExecutionContext {
  return {
    agentId,
    runId,
    seq: runId === undefined ? undefined : seq,
    idempotencyKey: `test-${seq}`,
    signal: new AbortController().signal,
    edited: false,
    logger: silentLogger(),
    reportUsage: () => undefined,
    progress: () => undefined,
  };
}
