import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../src/runtime/control/control-client.ts';
import { controlSocketPath } from '../../src/runtime/node.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { childEnvironment } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/chaos-node.ts', import.meta.url));
const RUNS = 100;
const STEPS = 10;
const DEADLINE_MS = 300_000;

const script = parseMockScript({
  conversations: [
    {
      name: 'chaos',
      match: { contains: 'chaos run' },
      turns: [
        ...Array.from({ length: STEPS }, (_, index) => ({
          reply: { toolCalls: [{ name: 'append-line', arguments: { step: index + 1 } }] },
        })),
        { reply: { text: 'all steps done' } },
      ],
    },
  ],
});

const manifest = {
  apiVersion: 'keel.dev/v1',
  id: 'chaos',
  version: '1.0.0',
  program: { builtin: 'tool-loop' },
  trust: 'autonomous',
  capabilities: [
    { kind: 'llm.chat', resource: 'chaos' },
    { kind: 'tool.call', resource: 'append-line' },
    { kind: 'log' },
  ],
  models: { default: 'chaos' },
  tools: ['append-line'],
  limits: { maxSteps: 40, maxIterations: 15, concurrency: 16, maxAttempts: 100 },
};

interface NodeProcess {
  readonly child: ChildProcess;
  readonly client: ControlClient;
}

async function startChaosNode(dataDirectory: string, linesFile: string): Promise<NodeProcess> {
  const child = spawn(process.execPath, [FIXTURE, dataDirectory, linesFile], {
    env: childEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-20_000);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`chaos node did not start: ${stderr}`)),
      30_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chaos node exited with ${code}: ${stderr}`));
    });
  });
  const client = await ControlClient.connect(controlSocketPath(dataDirectory));
  return { child, client };
}

async function killHard(node: NodeProcess): Promise<void> {
  node.client.close();
  const exited = once(node.child, 'exit');
  node.child.kill('SIGKILL');
  await exited;
}

describe('chaos: durable runs under kill -9', () => {
  it('completes 100 runs of 10 tool steps with exactly one line per step while workers and the node are killed', {
    timeout: DEADLINE_MS + 60_000,
  }, async (t) => {
    await using directory = await temporaryDirectory('keel-chaos-');
    const dataDirectory = join(directory.path, 'data');
    const linesFile = join(directory.path, 'lines.txt');
    await using mock = await MockLlmServer.start({ script });
    await mkdir(dataDirectory, { mode: 0o700 });
    await writeFile(
      join(dataDirectory, 'config.toml'),
      `[log]
level = "error"

[agents]
development = true

[runtime]
max_concurrent_runs = 16
restart_initial_delay_ms = 20
restart_max_delay_ms = 500
restart_budget = 1000
watchdog_timeout_ms = 10000

[models.providers.chaos]
kind = "openai-compatible"
base_url = "${mock.openAiBaseUrl}"
max_tokens_field = "max_tokens"

[models.aliases]
chaos = ["chaos/chaos-model"]
`,
      { mode: 0o600 },
    );

    let node = await startChaosNode(dataDirectory, linesFile);
    // Whatever fails below, no node outlives the test.
    t.after(async () => {
      node.client.close();
      if (node.child.exitCode === null && node.child.signalCode === null) {
        const exited = once(node.child, 'exit');
        node.child.kill('SIGKILL');
        await exited;
      }
    });
    await node.client.request('agents.deploy', { document: manifest });
    for (let index = 0; index < RUNS; index += 1) {
      await node.client.request('runs.submit', { agent: 'chaos', prompt: `chaos run ${index}` });
    }

    const started = Date.now();
    let workerKills = 0;
    let nodeKills = 0;
    let succeeded = 0;
    while (Date.now() - started < DEADLINE_MS) {
      await sleep(250 + Math.floor(Math.random() * 350));
      const runs = (await node.client.request('runs.list', { agent: 'chaos', limit: 1000 })) as {
        status: string;
      }[];
      succeeded = runs.filter((run) => run.status === 'succeeded').length;
      const failed = runs.filter((run) =>
        ['failed', 'dead-lettered', 'cancelled'].includes(run.status),
      );
      assert.deepEqual(failed, [], 'no run may fail');
      if (succeeded === RUNS) break;
      if (nodeKills < 2 && succeeded >= (nodeKills + 1) * (RUNS / 3)) {
        await killHard(node);
        nodeKills += 1;
        node = await startChaosNode(dataDirectory, linesFile);
        continue;
      }
      if (workerKills < 25) {
        const shown = (await node.client.request('agents.show', { name: 'chaos' })) as {
          agent: { worker: { pid: number | null } | null };
        };
        const pid = shown.agent.worker?.pid;
        if (pid !== null && pid !== undefined) {
          try {
            process.kill(pid, 'SIGKILL');
            workerKills += 1;
          } catch {
            // The worker had just ended on its own: the next round picks the new one.
          }
        }
      }
    }
    const lines = (await readFile(linesFile, 'utf8')).split('\n').filter((line) => line !== '');
    const perRun = new Map<string, number[]>();
    for (const line of lines) {
      const [runId, step] = line.split(' ');
      perRun.set(runId ?? '', [...(perRun.get(runId ?? '') ?? []), Number(step)]);
    }
    const allSteps = Array.from({ length: STEPS }, (_, index) => index + 1);
    const wrong = [...perRun].filter(
      ([, steps]) => [...steps].sort((a, b) => a - b).join(',') !== allSteps.join(','),
    );
    // The evidence for a wrong run: its journal, read before the node goes.
    for (const [runId] of wrong.slice(0, 3)) {
      const shown = (await node.client.request('runs.show', { runId })) as {
        journal: { seq: number; kind: string; outcome: string; result: unknown }[];
      };
      const entries = shown.journal.map(
        (entry) =>
          `${entry.seq} ${entry.kind} ${entry.outcome} ${JSON.stringify(entry.result).slice(0, 160)}`,
      );
      t.diagnostic(`run ${runId} journal:\n${entries.join('\n')}`);
    }
    node.client.close();
    const exited = once(node.child, 'exit');
    node.child.kill('SIGTERM');
    await exited;

    t.diagnostic(`worker kills: ${workerKills}, node kills: ${nodeKills}`);
    assert.equal(succeeded, RUNS, `only ${succeeded} of ${RUNS} runs succeeded in time`);
    assert.equal(nodeKills, 2, 'the node was killed twice');
    assert.ok(workerKills >= 3, `workers were killed ${workerKills} times`);
    assert.equal(perRun.size, RUNS);
    assert.deepEqual(
      wrong.map(([runId, steps]) => `${runId}: ${steps.join(',')}`),
      [],
      'every run has each step exactly once',
    );
    assert.equal(lines.length, RUNS * STEPS);
    // Chats sent what they added to the conversation; after each node kill, the runs in flight
    // found their conversation gone, were refused, and sent it whole.
    const database = new DatabaseSync(join(dataDirectory, 'keel.db'), { readOnly: true });
    try {
      const count = (sql: string): number =>
        Number((database.prepare(sql).get() as { n: number }).n);
      const continued = count(
        `SELECT count(*) AS n FROM audit_log WHERE kind = 'syscall.allow' AND subject LIKE 'llm.chat%' AND json_extract(data, '$.params.continues') IS NOT NULL`,
      );
      const unknown = count(
        `SELECT count(*) AS n FROM audit_log WHERE kind = 'syscall.deny' AND code = 'KEEL_CONVERSATION_UNKNOWN'`,
      );
      t.diagnostic(`continued chats: ${continued}, conversations not held: ${unknown}`);
      assert.ok(continued >= RUNS * (STEPS - 2), `only ${continued} chats continued one`);
      assert.ok(unknown >= 1, 'a run in flight at a node kill found its conversation gone');
    } finally {
      database.close();
    }
  });
});
