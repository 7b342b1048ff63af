import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ApprovalRecord } from '../../src/platform/storage/ports/approval-store.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import {
  CODER_SCRIPT,
  coderManifest,
  createCoderSetting,
  gitOutput,
} from '../support/coder-fixture.ts';
import { runKeel, type StartedKeel, startKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

/** Waits for `check` to give a value, asking every 100 ms. */
async function poll<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let waited = 0; waited < 90_000; waited += 100) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('the coding agent under kill -9', { timeout: 180_000 }, () => {
  it('survives the node being killed mid-task and finishes the task once, with an intact audit chain', async () => {
    await using directory = await temporaryDirectory('keel-coder-kill-');
    await using mock = await MockLlmServer.start({ script: CODER_SCRIPT });
    const { dataDirectory, repository } = await createCoderSetting(
      directory.path,
      mock.openAiBaseUrl,
    );
    const manifest = join(directory.path, 'coder.json');
    await writeFile(
      manifest,
      // Supervised: every side effect waits for a human, which gives the test its moments.
      JSON.stringify(coderManifest('supervised', repository)),
    );
    const at = ['--data-dir', dataDirectory];
    const start = () => startKeel([...at, '--port', '0'], { timeoutMs: 30_000 });
    let keel: StartedKeel = await start();
    try {
      const deployed = await runKeel(['agent', 'deploy', manifest, ...at]);
      assert.equal(deployed.code, 0, deployed.stderr);
      const submitted = await runKeel(['run', 'coder', 'Fix the failing test', '--json', ...at]);
      assert.equal(submitted.code, 0, submitted.stderr);
      const runId = (JSON.parse(submitted.stdout) as { id: string }).id;

      const pending = async (): Promise<ApprovalRecord | undefined> => {
        const listed = await runKeel(['approvals', 'list', '--json', ...at]);
        assert.equal(listed.code, 0, listed.stderr);
        return (JSON.parse(listed.stdout) as ApprovalRecord[])[0];
      };
      const asked: string[] = [];
      // Approve the tests, the edit and the tests again; stop at the checkpoint.
      for (;;) {
        const approval = await poll(pending, 'an approval');
        if (approval.resource === 'git_checkpoint') break;
        asked.push(approval.resource);
        const approved = await runKeel(['approvals', 'approve', approval.id, ...at]);
        assert.equal(approved.code, 0, approved.stderr);
        await poll(
          async () => ((await pending())?.id === approval.id ? undefined : true),
          'the decision to be taken',
        );
      }
      assert.deepEqual(asked, ['verify', 'edit_file', 'verify']);
      assert.match(await readFile(join(repository, 'sum.js'), 'utf8'), /return a \+ b;/);

      // Mid-task: the edit is made, the checkpoint waits. The node dies without a word.
      const killed = await keel.stop('SIGKILL');
      assert.equal(killed.signal, 'SIGKILL');
      keel = await start();

      const waiting = await poll(pending, 'the checkpoint approval after the restart');
      assert.equal(waiting.resource, 'git_checkpoint');
      const approved = await runKeel(['approvals', 'approve', waiting.id, ...at]);
      assert.equal(approved.code, 0, approved.stderr);
      const ended = await poll(async () => {
        const shown = await runKeel(['runs', 'show', runId, '--json', ...at]);
        const { run } = JSON.parse(shown.stdout) as { run: { status: string; error: unknown } };
        return ['succeeded', 'failed', 'cancelled', 'dead'].includes(run.status) ? run : undefined;
      }, 'the run to end');
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));

      // The task was done once: one edit, one checkpoint commit on the agent's branch.
      assert.equal(
        await readFile(join(repository, 'sum.js'), 'utf8'),
        'export function add(a, b) {\n  return a + b;\n}\n',
      );
      const branch = (await gitOutput(repository, 'branch', '--list', 'keel/*')).replace('*', '');
      const agentBranch = branch.trim();
      assert.match(agentBranch, /^keel\/agt_/);
      assert.equal(await gitOutput(repository, 'rev-list', '--count', `main..${agentBranch}`), '1');
      assert.equal(await gitOutput(repository, 'status', '--porcelain'), '');
      const verified = await runKeel(['audit', 'verify', ...at]);
      assert.equal(verified.code, 0, verified.stderr);
    } finally {
      await keel.stop();
    }
  });
});
