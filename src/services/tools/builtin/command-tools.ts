import { z } from 'zod';
import { compileGlob } from '../../../kernel/capabilities/pattern-matchers.ts';
import type { ExecutionContext } from '../../../kernel/gate/syscall.ts';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  runSandboxedCommand,
  type SandboxedCommandOptions,
  type SandboxedCommandResult,
} from '../../../platform/sandbox/command-sandbox.ts';
import type { SandboxReport } from '../../../platform/sandbox/detect-sandbox.ts';
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import type { AgentWorkspaces } from '../agent-workspaces.ts';
import { checkWorkspacePath } from '../files/workspace-path-policy.ts';
import { redactSecretsAndPii, scanForSecrets } from '../secrets/secret-scanner.ts';
import { parseCommandLine } from '../shell/command-line-policy.ts';
import { defineTool, type ToolDefinition } from '../tool-registry.ts';

/** How tools' commands run: the sandbox and its caps. */
export interface CommandToolSettings {
  /** The sandbox layers of this host, or `undefined` to detect them at the first command. */
  readonly report: () => Promise<SandboxReport>;
  readonly searchPath: string;
  /** Production: a missing layer refuses the command. */
  readonly required: boolean;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly memoryBytes: number;
  readonly maxProcesses: number;
  /** Branches an agent may not commit to (globs: `main`, `release/*`). */
  readonly protectedBranches: readonly string[];
}

/** A command's result as the agent sees it: exit status and output with secrets redacted. */
function commandView(result: SandboxedCommandResult): JsonObject {
  return {
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    stdout: redactSecretsAndPii(result.stdout).text,
    stderr: redactSecretsAndPii(result.stderr).text,
    truncated: result.truncated,
    durationMs: result.durationMs,
    sandbox: [...result.applied],
  };
}

const GIT = ['git', '-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false'];
const AGENT_IDENTITY = {
  GIT_AUTHOR_NAME: 'Keel agent',
  GIT_AUTHOR_EMAIL: 'agent@keel.invalid',
  GIT_COMMITTER_NAME: 'Keel agent',
  GIT_COMMITTER_EMAIL: 'agent@keel.invalid',
};
const BRANCH_NAME = /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$/;

/**
 * The tools that run programs in the command sandbox (see `runSandboxedCommand`) inside the
 * agent's workspace: `run_command` (a plain command line the shell policy accepts; the
 * capability's `commands` patterns decide which), `verify` (the workspace's own verification
 * command), and git: `git_status`, `git_diff`, `git_log`, `git_add`, `git_commit`,
 * `git_branch`, `git_checkpoint`. Git never runs hooks, commits are refused on protected
 * branches and when the staged change holds a secret, and there is no push.
 *
 * @example
 * ```ts
 * const registry = new ToolRegistry(createCommandTools(workspaces, settings));
 * ```
 */
export function createCommandTools(
  workspaces: AgentWorkspaces,
  settings: CommandToolSettings,
): ToolDefinition<never>[] {
  const run = async (
    context: ExecutionContext,
    argv: readonly string[],
    env: Readonly<Record<string, string>> = {},
  ): Promise<SandboxedCommandResult> =>
    runSandboxedCommand({
      ...(await commandSandboxOptions(workspaces, settings, context.agentId, argv)),
      env,
      signal: context.signal,
    });
  const git = async (
    context: ExecutionContext,
    args: readonly string[],
    env?: Readonly<Record<string, string>>,
  ): Promise<SandboxedCommandResult> => {
    const result = await run(context, [...GIT, ...args], env);
    if (result.exitCode !== 0) {
      throw new KeelError(
        'KEEL_EXECUTOR_FAILED',
        `git ${args[0] ?? ''} failed: ${redactSecretsAndPii(result.stderr).text.trim().slice(0, 2000)}`,
        { details: { exitCode: result.exitCode, signal: result.signal } },
      );
    }
    return result;
  };
  const currentBranch = async (context: ExecutionContext): Promise<string> =>
    (await git(context, ['rev-parse', '--abbrev-ref', 'HEAD'])).stdout.trim();
  const refuseProtected = (branch: string): void => {
    if (settings.protectedBranches.some((pattern) => compileGlob(pattern)(branch))) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        `branch ${branch} is protected; commit on a branch of your own (git_branch or git_checkpoint)`,
        { details: { rule: 'protected-branch', branch } },
      );
    }
  };
  const commitStaged = async (context: ExecutionContext, message: string): Promise<JsonObject> => {
    const branch = await currentBranch(context);
    refuseProtected(branch);
    const staged = (await git(context, ['diff', '--cached', '--name-only', '-z'])).stdout
      .split('\0')
      .filter((name) => name.length > 0);
    if (staged.length === 0) {
      throw new KeelError('KEEL_CONFLICT', 'nothing is staged to commit', {
        details: { rule: 'nothing-to-commit' },
      });
    }
    for (const name of staged) {
      const checked = checkWorkspacePath(name);
      if (!checked.ok) {
        throw new KeelError(
          'KEEL_POLICY_VIOLATION',
          `${name} may not be committed: ${checked.reason}`,
          {
            details: { rule: checked.rule, path: name },
          },
        );
      }
    }
    // As text, whatever git or .gitattributes call binary (`-diff`), and without textconv
    // filters: what is scanned is exactly the bytes that get committed.
    const diff = await git(context, [
      'diff',
      '--cached',
      '--no-color',
      '--no-ext-diff',
      '--text',
      '--no-textconv',
    ]);
    const findings = scanForSecrets(diff.stdout);
    if (findings.length > 0 || diff.truncated) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        findings.length > 0
          ? `the staged change holds what looks like a secret (${findings.map((finding) => finding.rule).join(', ')}); unstage it`
          : 'the staged change is too large to scan for secrets; commit it in smaller parts',
        { details: { rule: 'secret-in-commit', findings: findings.map((f) => f.rule) } },
      );
    }
    await git(context, ['commit', '--no-verify', '--no-gpg-sign', '-m', message], AGENT_IDENTITY);
    const commit = (await git(context, ['rev-parse', 'HEAD'])).stdout.trim();
    return { branch, commit, files: staged };
  };
  const message = z.string().min(1).max(5000);

  const runCommand = defineTool({
    name: 'run_command',
    description:
      'Runs a command in the workspace, in a sandbox without network. Plain words only: no shell syntax, pipes, quotes or variables.',
    sideEffects: true,
    input: z.strictObject({ command: z.string().min(1).max(8192) }),
    execute: async (input, context) =>
      commandView(await run(context, acceptedCommand(input.command))),
  });
  const verify = defineTool({
    name: 'verify',
    description:
      "Runs the workspace's verification command (its tests) in the sandbox and says whether it passed.",
    sideEffects: true,
    input: z.strictObject({}),
    execute: async (_input, context) => {
      const command = workspaces.of(context.agentId).verify;
      if (command === undefined) {
        throw new KeelError('KEEL_POLICY_VIOLATION', 'this workspace has no verification command', {
          details: { rule: 'no-verification-command' },
        });
      }
      const parsed = parseCommandLine(command);
      if (!parsed.ok) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `the verification command is refused: ${parsed.reason}`,
          {
            details: { rule: parsed.rule },
          },
        );
      }
      const result = await run(context, parsed.argv);
      return { command, passed: result.exitCode === 0 && !result.timedOut, ...commandView(result) };
    },
  });
  const status = defineTool({
    name: 'git_status',
    description: 'Shows the branch and the changed files of the workspace repository.',
    input: z.strictObject({}),
    execute: async (_input, context) => ({
      status: (await git(context, ['status', '--porcelain=v1', '--branch'])).stdout,
    }),
  });
  const diff = defineTool({
    name: 'git_diff',
    description:
      'Shows the unstaged (or, with staged, the staged) changes, optionally of one path.',
    input: z.strictObject({
      staged: z.boolean().optional(),
      path: z.string().min(1).max(4096).optional(),
    }),
    execute: async (input, context) => {
      const args = ['diff', '--no-color', '--no-ext-diff'];
      if (input.staged === true) args.push('--cached');
      if (input.path !== undefined) args.push('--', validPath(input.path));
      const result = await git(context, args);
      return { diff: redactSecretsAndPii(result.stdout).text, truncated: result.truncated };
    },
  });
  const log = defineTool({
    name: 'git_log',
    description: 'Lists the latest commits of the current branch.',
    input: z.strictObject({ limit: z.number().int().min(1).max(200).optional() }),
    execute: async (input, context) => ({
      log: (
        await git(context, ['log', '--oneline', '--no-decorate', '-n', String(input.limit ?? 20)])
      ).stdout,
    }),
  });
  const add = defineTool({
    name: 'git_add',
    description: 'Stages files of the workspace for the next commit.',
    sideEffects: true,
    input: z.strictObject({ paths: z.array(z.string().min(1).max(4096)).min(1).max(500) }),
    execute: async (input, context) => {
      const paths = input.paths.map(validPath);
      await git(context, ['add', '--', ...paths]);
      return { staged: paths };
    },
  });
  const commit = defineTool({
    name: 'git_commit',
    description: 'Commits the staged changes (never on a protected branch).',
    sideEffects: true,
    input: z.strictObject({ message }),
    execute: async (input, context) => commitStaged(context, input.message),
    effectOf: commitEffect,
  });
  const branch = defineTool({
    name: 'git_branch',
    description: 'Switches to a branch, creating it from the current commit when create is set.',
    sideEffects: true,
    input: z.strictObject({ name: z.string().min(1).max(200), create: z.boolean().optional() }),
    execute: async (input, context) => {
      if (!BRANCH_NAME.test(input.name)) {
        throw new KeelError('KEEL_INVALID_ARGUMENT', `${input.name} is not a valid branch name`, {
          details: { field: 'name' },
        });
      }
      await git(
        context,
        input.create === true ? ['switch', '-c', input.name] : ['switch', input.name],
      );
      return { branch: input.name };
    },
  });
  const checkpoint = defineTool({
    name: 'git_checkpoint',
    description:
      "Commits every change of the workspace on the agent's own branch (keel/<agent>), switching to it first.",
    sideEffects: true,
    input: z.strictObject({ message: message.optional() }),
    execute: async (input, context) => {
      const own = `keel/${context.agentId}`;
      if ((await currentBranch(context)) !== own) {
        const exists =
          (await run(context, [...GIT, 'rev-parse', '--verify', '--quiet', `refs/heads/${own}`]))
            .exitCode === 0;
        await git(context, exists ? ['switch', own] : ['switch', '-c', own]);
      }
      await git(context, ['add', '--all', '--', '.']);
      return commitStaged(context, input.message ?? `checkpoint ${context.idempotencyKey}`);
    },
    effectOf: commitEffect,
  });
  return [
    runCommand,
    verify,
    status,
    diff,
    log,
    add,
    commit,
    branch,
    checkpoint,
  ] as unknown as ToolDefinition<never>[];
}

/**
 * The command sandbox's options for a command of an agent: its workspace, no network, and the
 * node's caps and sandbox layers.
 *
 * @example
 * ```ts
 * await runSandboxedCommand(await commandSandboxOptions(workspaces, settings, agentId, ['ls']));
 * ```
 */
export async function commandSandboxOptions(
  workspaces: AgentWorkspaces,
  settings: CommandToolSettings,
  agentId: string,
  argv: readonly string[],
): Promise<SandboxedCommandOptions> {
  const { workspace } = workspaces.of(agentId);
  return {
    argv,
    workspace: workspace.root,
    network: false,
    timeoutMs: settings.timeoutMs,
    maxOutputBytes: settings.maxOutputBytes,
    memoryBytes: settings.memoryBytes,
    maxProcesses: settings.maxProcesses,
    report: await settings.report(),
    searchPath: settings.searchPath,
    required: settings.required,
  };
}

/**
 * A command line the shell policy accepts, as argv; `KEEL_POLICY_VIOLATION` otherwise.
 *
 * @example
 * ```ts
 * acceptedCommand('npm test'); // ['npm', 'test']
 * ```
 */
export function acceptedCommand(command: string): readonly string[] {
  const parsed = parseCommandLine(command);
  if (!parsed.ok) {
    throw new KeelError('KEEL_POLICY_VIOLATION', `command refused: ${parsed.reason}`, {
      details: { rule: parsed.rule },
    });
  }
  return parsed.argv;
}

function validPath(value: string): string {
  const checked = checkWorkspacePath(value);
  if (!checked.ok) {
    throw new KeelError(
      'KEEL_POLICY_VIOLATION',
      `path ${JSON.stringify(value)} refused: ${checked.reason}`,
      {
        details: { rule: checked.rule, path: value },
      },
    );
  }
  return checked.relative;
}

function commitEffect(value: JsonValue): JsonObject | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const object = value as JsonObject;
  return { branch: object.branch ?? null, commit: object.commit ?? null };
}
