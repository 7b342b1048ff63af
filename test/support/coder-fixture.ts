import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';

const run = promisify(execFile);
/** Commands run as the workspace's owner, never as root. */
const UNPRIVILEGED = 65534;

/** A small repository whose test fails: `add` subtracts. */
async function createRepository(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
  await writeFile(join(path, 'sum.js'), 'export function add(a, b) {\n  return a - b;\n}\n');
  await writeFile(
    join(path, 'sum.test.js'),
    "import assert from 'node:assert/strict';\nimport { test } from 'node:test';\nimport { add } from './sum.js';\n\ntest('adds', () => assert.equal(add(2, 3), 5));\n",
  );
  await writeFile(join(path, 'package.json'), '{ "type": "module" }\n');
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', ...args], {
      cwd: path,
    });
  await git('init', '--quiet', '--initial-branch=main');
  await git('add', '.');
  await git('commit', '--quiet', '-m', 'initial');
  // Commands run as the workspace's owner, never as root.
  if (process.getuid?.() === 0) await run('chown', ['-R', `${UNPRIVILEGED}:${UNPRIVILEGED}`, path]);
}

export async function gitOutput(path: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-c', `safe.directory=${path}`, ...args], { cwd: path });
  return stdout.trim();
}

/** The coder's scripted conversation: reads, claims success too early, then fixes. */
export const CODER_SCRIPT = parseMockScript({
  conversations: [
    {
      name: 'fix',
      match: { contains: 'Fix the failing test' },
      turns: [
        { reply: { toolCalls: [{ name: 'read_file', arguments: { path: 'sum.js' } }] } },
        // Claims success too early: the program runs the tests and sends it back.
        { reply: { text: 'The code looks right to me.' } },
        {
          reply: {
            toolCalls: [
              {
                name: 'edit_file',
                arguments: { path: 'sum.js', old: 'return a - b;', new: 'return a + b;' },
              },
            ],
          },
        },
        { reply: { text: 'Fixed: add now adds.' } },
      ],
    },
  ],
});

/** The coder's manifest over a repository, at a trust level (unsigned: development mode). */
export function coderManifest(trust: 'autonomous' | 'supervised', repository: string): JsonObject {
  return {
    apiVersion: 'keel.dev/v1',
    id: 'coder',
    version: '1.0.0',
    program: { builtin: 'coder' },
    trust,
    capabilities: [
      { kind: 'llm.chat', resource: 'coder' },
      { kind: 'tool.call', resource: 'read_file' },
      { kind: 'tool.call', resource: 'edit_file', limits: { paths: ['*.js'] } },
      { kind: 'tool.call', resource: 'verify' },
      { kind: 'tool.call', resource: 'git_checkpoint' },
      { kind: 'log' },
    ],
    models: { default: 'coder' },
    tools: ['read_file', 'edit_file', 'verify', 'git_checkpoint'],
    workspace: { path: repository, verify: 'node --test' },
  };
}

/**
 * A data directory (in development mode, its model the mock at `mockBaseUrl`) and the coder's
 * repository, side by side in `folder`.
 */
export async function createCoderSetting(
  folder: string,
  mockBaseUrl: string,
  options: { readonly silent?: boolean } = {},
): Promise<{ readonly dataDirectory: string; readonly repository: string }> {
  const dataDirectory = join(folder, 'data');
  const repository = join(folder, 'repository');
  await mkdir(dataDirectory, { mode: 0o700 });
  await createRepository(repository);
  const log = options.silent === true ? '[log]\nlevel = "silent"\n\n' : '';
  await writeFile(
    join(dataDirectory, 'config.toml'),
    `${log}[agents]\ndevelopment = true\n\n[models.providers.mock]\nkind = "openai-compatible"\nbase_url = "${mockBaseUrl}"\nmax_tokens_field = "max_tokens"\n\n[models.aliases]\ncoder = ["mock/coder-model"]\n`,
    { mode: 0o600 },
  );
  return { dataDirectory, repository };
}
