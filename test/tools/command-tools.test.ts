import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, chmod, chown, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import { createCommandTools } from '../../src/services/tools/builtin/command-tools.ts';
import { createFileTools } from '../../src/services/tools/builtin/file-tools.ts';
import { ToolRegistry } from '../../src/services/tools/tool-registry.ts';
import { rejectsWithCode } from '../support/assertions.ts';
import { createToolRig, type ToolRig, UNPRIVILEGED } from '../support/tool-rig.ts';

const run = promisify(execFile);
const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const PRIVATE_KEY = [
  '-----BEGIN RSA PRIVATE KEY-----',
  'MIIEowIBAAKCAQEA7bq9Hc2hXq1x5yVYxq3sRrTq2m0n8vWjHk3sQpZp0g4yLwQe',
  '-----END RSA PRIVATE KEY-----',
].join('\n');
const HOOKS = ['pre-commit', 'prepare-commit-msg', 'commit-msg', 'post-commit'];
const asRoot = process.getuid?.() === 0;

/** Writes a file straight to disk, past the tools' checks, owned like the rest of the workspace. */
async function putFile(root: string, name: string, content: string, mode = 0o644): Promise<void> {
  const path = join(root, name);
  await writeFile(path, content);
  await chmod(path, mode);
  if (asRoot) await chown(path, UNPRIVILEGED, UNPRIVILEGED);
}

/** Runs git on the workspace outside the sandbox, as its owner (so the index stays theirs); trimmed stdout. */
async function ownerGit(root: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(
    'git',
    ['-c', 'user.name=Owner', '-c', 'user.email=owner@example.invalid', ...args],
    {
      cwd: root,
      env: { ...process.env, HOME: root },
      ...(asRoot ? { uid: UNPRIVILEGED, gid: UNPRIVILEGED } : {}),
    },
  );
  return stdout.trim();
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

describe('command and file tools', { timeout: 180_000 }, () => {
  let rig: ToolRig;
  let tools: ToolRegistry;
  const call = async (agent: string, tool: string, args: JsonObject = {}) =>
    (await rig.call(tools, agent, tool, args)) as JsonObject;

  before(async () => {
    rig = await createToolRig();
    tools = new ToolRegistry([
      ...createCommandTools(rig.workspaces, rig.settings),
      ...createFileTools(rig.workspaces),
    ]);
  });
  after(async () => {
    await rig[Symbol.asyncDispose]();
  });

  it('refuses git_commit on the protected branches main and release/*', async () => {
    const root = await rig.workspace('agent_protected', { 'a.txt': 'one\n' }, { git: true });
    const initial = await ownerGit(root, 'rev-parse', 'HEAD');
    await call('agent_protected', 'write_file', { path: 'a.txt', content: 'two\n' });
    await call('agent_protected', 'git_add', { paths: ['a.txt'] });
    const onMain = await rejectsWithCode(
      call('agent_protected', 'git_commit', { message: 'straight to main' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(onMain.details.rule, 'protected-branch');
    assert.equal(onMain.details.branch, 'main');

    assert.deepEqual(
      await call('agent_protected', 'git_branch', { name: 'release/x', create: true }),
      { branch: 'release/x' },
    );
    const onRelease = await rejectsWithCode(
      call('agent_protected', 'git_commit', { message: 'straight to a release' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(onRelease.details.rule, 'protected-branch');
    assert.equal(onRelease.details.branch, 'release/x');
    assert.equal(await ownerGit(root, 'rev-parse', 'main'), initial);
    assert.equal(await ownerGit(root, 'rev-parse', 'release/x'), initial);
  });

  it('commits on a feature branch as the agent, and git_log shows the commit', async () => {
    const root = await rig.workspace('agent_feature', { 'a.txt': 'one\n' }, { git: true });
    assert.deepEqual(await call('agent_feature', 'git_branch', { name: 'feature', create: true }), {
      branch: 'feature',
    });
    await call('agent_feature', 'write_file', { path: 'feature.txt', content: 'new\n' });
    assert.deepEqual(await call('agent_feature', 'git_add', { paths: ['./feature.txt'] }), {
      staged: ['feature.txt'],
    });
    const committed = await call('agent_feature', 'git_commit', { message: 'add the feature' });
    assert.equal(committed.branch, 'feature');
    assert.match(committed.commit as string, /^[0-9a-f]{40}$/);
    assert.deepEqual(committed.files, ['feature.txt']);

    const log = (await call('agent_feature', 'git_log', { limit: 5 })).log as string;
    const lines = log.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^[0-9a-f]{7,} add the feature$/);
    assert.ok(String(committed.commit).startsWith(lines[0]?.split(' ')[0] ?? '-'));
    assert.equal(await ownerGit(root, 'rev-parse', 'feature'), committed.commit);
    assert.equal(
      await ownerGit(root, 'log', '-1', '--format=%an <%ae>'),
      'Keel agent <agent@keel.invalid>',
    );
  });

  it('refuses to commit a staged change that holds a secret, naming the rules but not the secret', async () => {
    const root = await rig.workspace('agent_secret', { 'a.txt': 'one\n' }, { git: true });
    await call('agent_secret', 'git_branch', { name: 'feature', create: true });
    await putFile(root, 'deploy.txt', `aws_access_key_id = ${AWS_KEY}\n`);
    await putFile(root, 'server.txt', `${PRIVATE_KEY}\n`);
    await call('agent_secret', 'git_add', { paths: ['deploy.txt', 'server.txt'] });
    const refused = await rejectsWithCode(
      call('agent_secret', 'git_commit', { message: 'deploy settings' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(refused.details.rule, 'secret-in-commit');
    assert.deepEqual([...(refused.details.findings as string[])].sort(), [
      'aws-access-key-id',
      'private-key',
    ]);
    assert.ok(!refused.message.includes(AWS_KEY));
    assert.ok(!refused.message.includes('MIIEowIBAAKCAQEA'));
    assert.equal(await ownerGit(root, 'rev-list', '--count', 'HEAD'), '1');

    // git_checkpoint goes through the same check.
    const checkpoint = await rejectsWithCode(
      call('agent_secret', 'git_checkpoint', {}),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(checkpoint.details.rule, 'secret-in-commit');
    assert.equal(await ownerGit(root, 'rev-list', '--count', 'HEAD'), '1');
  });

  it('refuses to commit a secret that git would show as binary (a NUL byte, or .gitattributes -diff)', async () => {
    const root = await rig.workspace('agent_binary', { 'a.txt': 'one\n' }, { git: true });
    await call('agent_binary', 'git_branch', { name: 'feature', create: true });
    await putFile(root, 'blob.bin', `\0\0key ${AWS_KEY}\n`);
    await call('agent_binary', 'git_add', { paths: ['blob.bin'] });
    const binary = await rejectsWithCode(
      call('agent_binary', 'git_commit', { message: 'blob' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(binary.details.rule, 'secret-in-commit');
    await ownerGit(root, 'reset', '--quiet');

    await putFile(root, 'deploy.txt', `key ${AWS_KEY}\n`);
    await call('agent_binary', 'write_file', { path: '.gitattributes', content: '*.txt -diff\n' });
    await call('agent_binary', 'git_add', { paths: ['.gitattributes', 'deploy.txt'] });
    const attributed = await rejectsWithCode(
      call('agent_binary', 'git_commit', { message: 'deploy' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(attributed.details.rule, 'secret-in-commit');
  });

  it('refuses write_file and edit_file content that holds a secret, and writes nothing', async () => {
    const root = await rig.workspace('agent_write', { 'config.txt': 'region = eu\n' });
    const written = await rejectsWithCode(
      call('agent_write', 'write_file', { path: 'keys.txt', content: `key ${AWS_KEY}\n` }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(written.details.rule, 'secret-in-content');
    assert.deepEqual(written.details.findings, [{ rule: 'aws-access-key-id', line: 1 }]);
    assert.ok(!written.message.includes(AWS_KEY));
    assert.equal(await exists(join(root, 'keys.txt')), false);

    const edited = await rejectsWithCode(
      call('agent_write', 'edit_file', {
        path: 'config.txt',
        old: 'region = eu',
        new: `region = eu\n${PRIVATE_KEY}`,
      }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(edited.details.rule, 'secret-in-content');
    assert.equal(await readFile(join(root, 'config.txt'), 'utf8'), 'region = eu\n');
  });

  it('cannot stage a denied file, and refuses to commit one staged by other means', async () => {
    const root = await rig.workspace('agent_env', { 'a.txt': 'one\n' }, { git: true });
    await call('agent_env', 'git_branch', { name: 'feature', create: true });
    await putFile(root, '.env', 'DATABASE_URL=postgres://localhost/app\n');
    const staging = await rejectsWithCode(
      call('agent_env', 'git_add', { paths: ['.env'] }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(staging.details.rule, 'denied-path');
    assert.equal(await ownerGit(root, 'diff', '--cached', '--name-only'), '');

    await ownerGit(root, 'add', '-f', '.env');
    assert.equal(await ownerGit(root, 'diff', '--cached', '--name-only'), '.env');
    const committing = await rejectsWithCode(
      call('agent_env', 'git_commit', { message: 'settings' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(committing.details.rule, 'denied-path');
    assert.equal(committing.details.path, '.env');
    const checkpoint = await rejectsWithCode(
      call('agent_env', 'git_checkpoint', {}),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(checkpoint.details.rule, 'denied-path');
    assert.equal(await ownerGit(root, 'rev-list', '--count', '--all'), '1');
  });

  it('never runs git hooks, in git_checkpoint or git_commit', async () => {
    const root = await rig.workspace('agent_hooks', { 'a.txt': 'one\n' }, { git: true });
    for (const hook of HOOKS) {
      await putFile(root, `.git/hooks/${hook}`, `#!/bin/sh\ntouch hook-ran-${hook}\n`, 0o755);
    }
    const ran = async () => {
      const found: string[] = [];
      for (const hook of HOOKS) {
        if (await exists(join(root, `hook-ran-${hook}`))) found.push(hook);
      }
      return found;
    };

    await call('agent_hooks', 'write_file', { path: 'b.txt', content: 'two\n' });
    const checkpoint = await call('agent_hooks', 'git_checkpoint', { message: 'checkpoint' });
    assert.equal(checkpoint.branch, 'keel/agent_hooks');
    assert.deepEqual(await ran(), []);

    await call('agent_hooks', 'git_branch', { name: 'feature', create: true });
    await call('agent_hooks', 'write_file', { path: 'c.txt', content: 'three\n' });
    await call('agent_hooks', 'git_add', { paths: ['c.txt'] });
    const committed = await call('agent_hooks', 'git_commit', { message: 'feature' });
    assert.equal(committed.branch, 'feature');
    assert.deepEqual(await ran(), []);

    // The hooks are live: a plain git commit by the owner runs them.
    await putFile(root, 'd.txt', 'four\n');
    await ownerGit(root, 'add', 'd.txt');
    await ownerGit(root, 'commit', '--quiet', '-m', 'by hand');
    assert.deepEqual(await ran(), HOOKS);
  });

  it('git_checkpoint commits every change on keel/<agent> and leaves main alone', async () => {
    const root = await rig.workspace(
      'agent_checkpoint',
      { 'a.txt': 'one\n', 'src/b.txt': 'two\n' },
      { git: true },
    );
    const main = await ownerGit(root, 'rev-parse', 'main');
    await call('agent_checkpoint', 'write_file', { path: 'src/new.txt', content: 'new\n' });
    await call('agent_checkpoint', 'edit_file', { path: 'a.txt', old: 'one', new: 'ONE' });
    const first = await call('agent_checkpoint', 'git_checkpoint', { message: 'wip' });
    assert.equal(first.branch, 'keel/agent_checkpoint');
    assert.match(first.commit as string, /^[0-9a-f]{40}$/);
    assert.deepEqual([...(first.files as string[])].sort(), ['a.txt', 'src/new.txt']);
    assert.equal(await ownerGit(root, 'rev-parse', 'keel/agent_checkpoint'), first.commit);
    assert.equal(
      await ownerGit(root, 'rev-parse', '--abbrev-ref', 'HEAD'),
      'keel/agent_checkpoint',
    );
    assert.equal(await ownerGit(root, 'rev-parse', 'main'), main);
    assert.equal(await ownerGit(root, 'status', '--porcelain'), '');

    const empty = await rejectsWithCode(
      call('agent_checkpoint', 'git_checkpoint', {}),
      'KEEL_CONFLICT',
    );
    assert.equal(empty.details.rule, 'nothing-to-commit');

    // From another branch, a checkpoint goes back to the agent's existing branch.
    await call('agent_checkpoint', 'git_branch', { name: 'other', create: true });
    await call('agent_checkpoint', 'write_file', { path: 'c.txt', content: 'three\n' });
    const second = await call('agent_checkpoint', 'git_checkpoint', {});
    assert.equal(second.branch, 'keel/agent_checkpoint');
    assert.equal(await ownerGit(root, 'rev-parse', 'keel/agent_checkpoint~1'), first.commit);
  });

  it('redacts secrets and e-mail addresses from run_command output and git_diff', async () => {
    await rig.workspace(
      'agent_redact',
      {
        'notes.txt': `ask ana@example.org for the key ${AWS_KEY} today\n`,
        'README.md': '# App\n',
      },
      { git: true },
    );
    const output = await call('agent_redact', 'run_command', { command: 'cat notes.txt' });
    assert.equal(output.exitCode, 0);
    assert.equal(
      output.stdout,
      'ask [REDACTED:email] for the key [REDACTED:aws-access-key-id] today\n',
    );
    assert.ok((output.sandbox as string[]).includes('bubblewrap'));

    await call('agent_redact', 'write_file', {
      path: 'README.md',
      content: '# App\nmaintainer: bob.smith@example.com\n',
    });
    const unstaged = (await call('agent_redact', 'git_diff', {})).diff as string;
    assert.match(unstaged, /^\+maintainer: \[REDACTED:email\]$/m);
    assert.ok(!unstaged.includes('bob.smith@example.com'));
    await call('agent_redact', 'git_add', { paths: ['README.md'] });
    const staged = (await call('agent_redact', 'git_diff', { staged: true, path: 'README.md' }))
      .diff as string;
    assert.match(staged, /^\+maintainer: \[REDACTED:email\]$/m);
    assert.ok(!staged.includes('bob.smith@example.com'));
  });

  it('refuses git_add and git_diff paths outside the workspace or inside .git', async () => {
    const root = await rig.workspace('agent_paths', { 'a.txt': 'one\n' }, { git: true });
    await putFile(root, '../outside', 'not yours\n');
    const cases: Array<[string, string]> = [
      ['../outside', 'parent-segment'],
      ['/etc/passwd', 'absolute'],
      ['.git/config', 'denied-path'],
      ['src/../../outside', 'parent-segment'],
    ];
    for (const [path, rule] of cases) {
      const refused = await rejectsWithCode(
        call('agent_paths', 'git_add', { paths: ['a.txt', path] }),
        'KEEL_POLICY_VIOLATION',
      );
      assert.equal(refused.details.rule, rule, path);
      assert.equal(refused.details.path, path);
    }
    const diff = await rejectsWithCode(
      call('agent_paths', 'git_diff', { path: '../outside' }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(diff.details.rule, 'parent-segment');
    assert.equal(await ownerGit(root, 'diff', '--cached', '--name-only'), '');
  });

  it('verify runs the workspace command in the sandbox and says whether it passed', async () => {
    await rig.workspace(
      'agent_verify_ok',
      {
        'sum.test.js':
          "require('node:test')('adds', () => require('node:assert').equal(1 + 1, 2));\n",
      },
      { verify: 'node --test' },
    );
    await rig.workspace(
      'agent_verify_bad',
      {
        'sum.test.js':
          "require('node:test')('adds', () => require('node:assert').equal(1 + 1, 3));\n",
      },
      { verify: 'node --test' },
    );
    await rig.workspace('agent_verify_none', { 'a.txt': 'one\n' });

    const passed = await call('agent_verify_ok', 'verify');
    assert.equal(passed.passed, true);
    assert.equal(passed.exitCode, 0);
    assert.equal(passed.command, 'node --test');
    assert.match(passed.stdout as string, /pass 1/);
    assert.ok((passed.sandbox as string[]).includes('bubblewrap'));

    const failed = await call('agent_verify_bad', 'verify');
    assert.equal(failed.passed, false);
    assert.notEqual(failed.exitCode, 0);
    assert.match(failed.stdout as string, /fail 1/);
    assert.ok((failed.sandbox as string[]).includes('bubblewrap'));

    const none = await rejectsWithCode(
      call('agent_verify_none', 'verify'),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(none.details.rule, 'no-verification-command');
  });

  it('refuses every command, git and file tool for an agent without a workspace', async () => {
    const calls: Array<[string, JsonObject]> = [
      ['run_command', { command: 'ls' }],
      ['verify', {}],
      ['git_status', {}],
      ['git_checkpoint', {}],
      ['read_file', { path: 'a.txt' }],
      ['write_file', { path: 'a.txt', content: 'x' }],
    ];
    for (const [tool, args] of calls) {
      const refused = await rejectsWithCode(
        call('agent_nowhere', tool, args),
        'KEEL_POLICY_VIOLATION',
      );
      assert.equal(refused.details.rule, 'no-workspace', tool);
      assert.equal(refused.details.agentId, 'agent_nowhere');
    }
  });
});
