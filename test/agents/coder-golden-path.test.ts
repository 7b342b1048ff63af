import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfiguration } from '../../src/kernel/config/load-configuration.ts';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import { FINAL_RUN_STATUSES, type RunRecord } from '../../src/platform/storage/ports/run-store.ts';
import { type KeelNode, startNode } from '../../src/runtime/node.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import {
  CODER_SCRIPT,
  coderManifest,
  createCoderSetting,
  gitOutput,
} from '../support/coder-fixture.ts';
import { runKeel } from '../support/keel-process.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

async function withCoderNode(
  trust: 'autonomous' | 'supervised',
  test: (node: KeelNode, repository: string) => Promise<void>,
): Promise<void> {
  await using directory = await temporaryDirectory('keel-coder-');
  await using mock = await MockLlmServer.start({ script: CODER_SCRIPT });
  const { dataDirectory, repository } = await createCoderSetting(
    directory.path,
    mock.openAiBaseUrl,
    { silent: true },
  );
  const node = await startNode({
    loaded: await loadConfiguration({ dataDirectory }),
    logger: silentLogger(),
  });
  try {
    await node.runtime.deploy(coderManifest(trust, repository), 'test');
    await test(node, repository);
  } finally {
    await node.close('test done');
  }
}

async function waitFor(
  node: KeelNode,
  runId: string,
  done: (run: RunRecord) => boolean,
): Promise<RunRecord> {
  for (let waited = 0; waited < 90_000; waited += 50) {
    const current = await node.storage.runs.get(runId);
    if (current !== undefined && done(current)) return current;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`run ${runId} did not get there`);
}

describe('the coding agent', { timeout: 180_000 }, () => {
  it('fixes a failing test, verifies in the sandbox before claiming success, and checkpoints on its branch', async () => {
    await withCoderNode('autonomous', async (node, repository) => {
      const submitted = await node.runtime.submitRun(
        'coder',
        { prompt: 'Fix the failing test in this repository.' },
        { origin: 'test', actor: 'test' },
      );
      const ended = await waitFor(node, submitted.id, (run) =>
        FINAL_RUN_STATUSES.includes(run.status),
      );
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      const result = ended.result as { status: string; data: JsonObject };
      assert.equal(result.status, 'completed');
      assert.equal(result.data.verified, true);
      assert.equal(result.data.branch, `keel/${ended.agentId}`);

      // The repository: fixed on the agent's branch, main untouched.
      assert.match(await readFile(join(repository, 'sum.js'), 'utf8'), /return a \+ b;/);
      assert.equal(
        await gitOutput(repository, 'rev-parse', '--abbrev-ref', 'HEAD'),
        result.data.branch,
      );
      assert.equal(await gitOutput(repository, 'rev-parse', 'HEAD'), result.data.commit);
      assert.match(await gitOutput(repository, 'show', 'main:sum.js'), /return a - b;/);
      assert.equal(await gitOutput(repository, 'status', '--porcelain'), '');

      // Verification ran twice, in the sandbox: failed after the premature claim, then passed.
      const { journal } = await node.runtime.showRun(submitted.id);
      const verifications = journal
        .filter((entry) => entry.kind === 'tool.call' && entry.outcome === 'ok')
        .map((entry) => entry.result as JsonObject)
        .filter((value) => 'passed' in value);
      assert.deepEqual(
        verifications.map((value) => value.passed),
        [false, true],
      );
      for (const verification of verifications) {
        const layers = verification.sandbox as string[];
        assert.ok(layers.includes('bubblewrap'), `layers: ${layers.join(', ')}`);
        assert.ok(layers.includes('network-namespace'));
        assert.ok(layers.includes('unprivileged-uid'));
      }

      // The audit trail: every tool call, the edit with its checksum.
      const audit = await node.storage.audit.read(0, 10_000);
      const subjects = audit.map((entry) => entry.subject);
      for (const tool of ['read_file', 'edit_file', 'verify', 'git_checkpoint']) {
        assert.ok(subjects.includes(`tool.call ${tool}`), `audited ${tool}`);
      }
      const edit = audit.find(
        (entry) => entry.kind === 'syscall.allow' && entry.subject === 'tool.call edit_file',
      );
      assert.ok(edit !== undefined, 'the edit is audited');
      const effect = (edit.data as { effect?: { sha256?: string } }).effect;
      assert.match(effect?.sha256 ?? '', /^[0-9a-f]{64}$/);
    });
  });

  it('waits for a human before each side effect of a supervised agent, and resumes once approved', async () => {
    await withCoderNode('supervised', async (node, repository) => {
      const submitted = await node.runtime.submitRun(
        'coder',
        { prompt: 'Fix the failing test in this repository.' },
        { origin: 'test', actor: 'test' },
      );
      const asked: string[] = [];
      let ended: RunRecord | undefined;
      for (let waited = 0; ended === undefined && waited < 120_000; waited += 50) {
        const current = await node.storage.runs.get(submitted.id);
        if (current !== undefined && FINAL_RUN_STATUSES.includes(current.status)) {
          ended = current;
          break;
        }
        const [approval, ...more] = await node.kernel.approvals.list({ state: 'pending' });
        if (approval === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        assert.equal(more.length, 0);
        assert.equal(approval.runId, submitted.id);
        // The request is recorded a moment before the run reports back and suspends.
        await waitFor(node, submitted.id, (run) => run.status === 'suspended');
        // Nothing happened before the human said yes.
        if (approval.resource === 'edit_file') {
          assert.match(await readFile(join(repository, 'sum.js'), 'utf8'), /return a - b;/);
        }
        asked.push(approval.resource);
        if (approval.resource === 'edit_file') {
          // The operator edits the change before approving it, from the command line.
          const dataDirectory = join(repository, '..', 'data');
          const shown = await runKeel([
            'approvals',
            'show',
            approval.id,
            '--data-dir',
            dataDirectory,
          ]);
          assert.equal(shown.code, 0, shown.stderr);
          assert.match(shown.stdout, /return a \+ b;/);
          const approved = await runKeel([
            'approvals',
            'approve',
            approval.id,
            '--set',
            'new=return a + b; // reviewed',
            '--note',
            'keep a review mark',
            '--data-dir',
            dataDirectory,
          ]);
          assert.equal(approved.code, 0, approved.stderr);
          assert.match(approved.stdout, /approved with your edits/);
        } else {
          await node.kernel.approvals.decide(approval.id, 'approved', 'operator:test');
        }
      }
      assert.ok(ended !== undefined, 'the run ended');
      assert.equal(ended.status, 'succeeded', JSON.stringify(ended.error));
      // Reading is no side effect; the tests, the edit and the commit are.
      assert.deepEqual(asked, ['verify', 'edit_file', 'verify', 'git_checkpoint']);
      assert.match(
        await readFile(join(repository, 'sum.js'), 'utf8'),
        /return a \+ b; \/\/ reviewed/,
        'the edited change is the one made',
      );
      const kinds = (await node.storage.audit.read(0, 10_000)).map((entry) => entry.kind);
      for (const kind of ['approval.request', 'approval.approve', 'approval.use', 'run.suspend']) {
        assert.ok(kinds.includes(kind), `audited ${kind}`);
      }
    });
  });
});
