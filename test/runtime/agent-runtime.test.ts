import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfiguration } from '../../src/kernel/config/load-configuration.ts';
import { isKeelError } from '../../src/platform/errors/keel-error.ts';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import { FINAL_RUN_STATUSES, type RunRecord } from '../../src/platform/storage/ports/run-store.ts';
import { ControlClient } from '../../src/runtime/control/control-client.ts';
import { parseAgentManifest } from '../../src/runtime/manifests/agent-manifest.ts';
import {
  generateSigningKeyPair,
  signManifest,
} from '../../src/runtime/manifests/manifest-signing.ts';
import { type KeelNode, startNode } from '../../src/runtime/node.ts';
import { FrameDecoder } from '../../src/runtime/worker/frame-codec.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const AGENT_PROGRAM = fileURLToPath(
  new URL('../../src/runtime/worker/agent-program.ts', import.meta.url),
);

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const publisher = generateSigningKeyPair();

interface NodeOptions {
  readonly development?: boolean;
  readonly restartBudget?: number;
  /** Whether `publisher` is in `[agents] trusted_keys` (default yes). */
  readonly trustPublisher?: boolean;
  /** More of config.toml, after the rest. */
  readonly more?: string;
}

async function startWith(dataDirectory: string, options: NodeOptions): Promise<KeelNode> {
  const trusted =
    options.trustPublisher === false
      ? ''
      : `[[agents.trusted_keys]]
name = "test"
public_key = "${publisher.publicKey}"
`;
  await writeFile(
    join(dataDirectory, 'config.toml'),
    `[log]
level = "silent"

[agents]
development = ${options.development === true}

${trusted}
[runtime]
heartbeat_interval_ms = 100
watchdog_timeout_ms = 1500
restart_initial_delay_ms = 20
restart_max_delay_ms = 200
restart_budget = ${options.restartBudget ?? 100}
${options.more ?? ''}`,
    { mode: 0o600 },
  );
  const loaded = await loadConfiguration({ dataDirectory });
  return startNode({ loaded, logger: silentLogger() });
}

async function withNode(
  test: (
    node: KeelNode,
    modules: string,
    /**
     * Stops the node and starts it again on the same data directory with other options, doing
     * `whileClosed` to its database file in between.
     */
    reopen: (
      options: NodeOptions,
      whileClosed?: (databaseFile: string) => Promise<void> | void,
    ) => Promise<KeelNode>,
  ) => Promise<void>,
  options: NodeOptions = {},
): Promise<void> {
  await using directory = await temporaryDirectory('keel-runtime-');
  const dataDirectory = join(directory.path, 'data');
  const modules = join(directory.path, 'modules');
  await mkdir(dataDirectory, { mode: 0o700 });
  await mkdir(modules);
  // The worker runs as an unprivileged user: its program must be readable by it.
  await chmod(directory.path, 0o755);
  await chmod(modules, 0o755);
  let node = await startWith(dataDirectory, options);
  try {
    await test(node, modules, async (next, whileClosed) => {
      await node.close('reopening');
      await whileClosed?.(node.loaded.configuration.databaseFile);
      node = await startWith(dataDirectory, next);
      return node;
    });
  } finally {
    await node.close('test done');
  }
}

function manifest(overrides: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'keel.dev/v1',
    id: 'probe',
    version: '1.0.0',
    program: { builtin: 'tool-loop' },
    trust: 'supervised',
    capabilities: [{ kind: 'log' }, { kind: 'clock.now' }],
    ...overrides,
  };
}

function signed(value: JsonObject): JsonObject {
  return signManifest(parseAgentManifest(value), publisher.privateKeyPem, new Date()) as never;
}

async function writeModule(modules: string, name: string, body: string): Promise<string> {
  const path = join(modules, `${name}.ts`);
  await writeFile(
    path,
    `import { defineAgent } from '${AGENT_PROGRAM}';\nexport default defineAgent({ name: '${name}', async run(context) {\n${body}\n} });\n`,
  );
  await chmod(path, 0o644);
  return path;
}

async function runToEnd(node: KeelNode, agent: string, prompt: string): Promise<RunRecord> {
  const run = await node.runtime.submitRun(agent, { prompt }, { origin: 'test', actor: 'test' });
  return ended(node, run.id);
}

async function ended(node: KeelNode, runId: string): Promise<RunRecord> {
  for (let waited = 0; waited < 60_000; waited += 50) {
    const current = await node.storage.runs.get(runId);
    if (current !== undefined && FINAL_RUN_STATUSES.includes(current.status)) return current;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`run ${runId} did not end`);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isKeelError(error) && error.code === code);
}

describe('agent runtime', { timeout: 120_000 }, () => {
  it('deploys a signed manifest and refuses unsigned, altered, untrusted and replayed older ones', async () => {
    await withNode(async (node) => {
      await rejectsWith(node.runtime.deploy(manifest(), 'test'), 'KEEL_MANIFEST_UNSIGNED');
      const altered = signed(manifest()) as { manifest: JsonObject };
      await rejectsWith(
        node.runtime.deploy(
          { ...altered, manifest: { ...altered.manifest, trust: 'autonomous' } },
          'test',
        ),
        'KEEL_MANIFEST_SIGNATURE_INVALID',
      );
      const stranger = generateSigningKeyPair();
      await rejectsWith(
        node.runtime.deploy(
          signManifest(parseAgentManifest(manifest()), stranger.privateKeyPem, new Date()),
          'test',
        ),
        'KEEL_MANIFEST_UNTRUSTED_KEY',
      );
      const first = await node.runtime.deploy(signed(manifest({ version: '1.1.0' })), 'test');
      assert.equal(first.outcome, 'created');
      assert.equal(first.agent.trustLevel, 'untrusted');
      await rejectsWith(
        node.runtime.deploy(signed(manifest({ version: '1.0.9' })), 'test'),
        'KEEL_MANIFEST_DOWNGRADE',
      );
      await rejectsWith(
        node.runtime.deploy(signed(manifest({ version: '1.1.0', description: 'changed' })), 'test'),
        'KEEL_MANIFEST_DOWNGRADE',
      );
      await rejectsWith(
        node.runtime.deploy(
          signed(manifest({ id: 'unknown', program: { builtin: 'react-agent' } })),
          'test',
        ),
        'KEEL_MANIFEST_INVALID',
      );
      // More memory than [runtime] worker_memory_mb (256 by default) allows.
      await rejectsWith(
        node.runtime.deploy(signed(manifest({ id: 'big', limits: { memoryMb: 1024 } })), 'test'),
        'KEEL_MANIFEST_INVALID',
      );
      const again = await node.runtime.deploy(signed(manifest({ version: '1.1.0' })), 'test');
      assert.equal(again.outcome, 'unchanged');
      const deploys = (await node.storage.audit.tail(50)).filter(
        (entry) => entry.kind === 'agent.deploy' && entry.outcome !== 'denied',
      );
      assert.deepEqual(
        deploys.map((entry) => entry.outcome),
        ['created', 'unchanged'],
      );
      const denials = (await node.storage.audit.tail(50)).filter(
        (entry) => entry.kind === 'agent.deploy' && entry.outcome === 'denied',
      );
      assert.equal(denials.length, 7);

      // An upgrade replaces the grants with the new manifest's, and audits each change.
      const upgraded = await node.runtime.deploy(
        signed(manifest({ version: '1.2.0', capabilities: [{ kind: 'random' }] })),
        'test',
      );
      assert.equal(upgraded.outcome, 'updated');
      const grants = await node.kernel.capabilities.list(upgraded.agent.id);
      assert.deepEqual(
        grants.filter((grant) => grant.revokedAt === null).map((grant) => grant.grant.kind),
        ['random'],
      );
      assert.deepEqual(
        grants
          .filter((grant) => grant.revokedAt !== null)
          .map((grant) => grant.grant.kind)
          .sort(),
        ['clock.now', 'log'],
      );
      const changes = (await node.storage.audit.tail(10)).filter((entry) =>
        entry.kind.startsWith('capability.'),
      );
      assert.deepEqual(changes.map((entry) => entry.kind).sort(), [
        'capability.grant',
        'capability.revoke',
        'capability.revoke',
      ]);
    });
  });

  it('runs a defineAgent module in a sandbox where files, network, secrets and processes are out of reach', async () => {
    await withNode(
      async (node, modules) => {
        const path = await writeModule(
          modules,
          'prober',
          `
  const { readFile } = await import('node:fs/promises');
  const net = await import('node:net');
  const { spawnSync } = await import('node:child_process');
  const observed = {};
  observed.passwd = await readFile('/etc/passwd', 'utf8').then(() => 'read', (error) => error.code);
  // Of Keel's project, only its code and dependencies: not a data directory kept beside them.
  observed.project = await readFile(${JSON.stringify(join(PROJECT_ROOT, 'README.md'))}).then(() => 'read', (error) => error.code);
  observed.code = await readFile(${JSON.stringify(AGENT_PROGRAM)}).then(() => 'read', (error) => error.code);
  observed.socket = await new Promise((resolve) => {
    const socket = net.connect(5432, '127.0.0.1');
    socket.on('connect', () => { socket.destroy(); resolve('connected'); });
    socket.on('error', (error) => resolve(error.code));
  });
  observed.environment = Object.keys(process.env);
  const child = spawnSync('/bin/sh', ['-c', 'echo escaped']);
  observed.spawn = child.error === undefined ? 'spawned' : child.error.code;
  observed.now = await context.now();
  return observed;`,
        );
        await node.runtime.deploy(
          manifest({ id: 'prober', program: { module: path }, trust: 'autonomous' }),
          'test',
        );
        const run = await runToEnd(node, 'prober', 'probe the sandbox');
        assert.equal(run.status, 'succeeded', JSON.stringify(run.error));
        const observed = run.result as Record<string, unknown>;
        assert.equal(observed.passwd, 'ENOENT');
        assert.equal(observed.project, 'ENOENT');
        assert.equal(observed.code, 'read');
        assert.notEqual(observed.socket, 'connected');
        assert.deepEqual(
          (observed.environment as string[]).filter((key) => key !== 'PWD'),
          [],
        );
        assert.equal(observed.spawn, 'EPERM');
        assert.equal(typeof observed.now, 'number');
        const shown = await node.runtime.show('prober');
        assert.ok(shown.agent.worker?.isolation.includes('bubblewrap'), 'bwrap must be applied');
        assert.ok(shown.agent.worker?.isolation.includes('seccomp'));
      },
      { development: true },
    );
  });

  it('answers a control request nested deeper than the stack would take with an error, and goes on serving', async () => {
    await withNode(
      async (node) => {
        await using client = await ControlClient.connect(
          join(node.loaded.configuration.dataDirectory, 'keel.sock'),
        );
        // Written by hand: JSON.stringify itself runs out of stack on such a value.
        const socketPath = join(node.loaded.configuration.dataDirectory, 'keel.sock');
        const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
        const text = `{"id":1,"method":"agents.deploy","params":{"document":{"id":"deep","settings":${deep}}}}`;
        const frame = Buffer.alloc(4 + Buffer.byteLength(text));
        frame.writeUInt32BE(frame.length - 4, 0);
        frame.write(text, 4);
        const raw = connect(socketPath);
        raw.write(frame);
        const decoder = new FrameDecoder(1024 * 1024);
        const [answer] = await new Promise<unknown[]>((resolve) =>
          raw.on('data', (chunk: Buffer) => {
            const messages = decoder.push(chunk);
            if (messages.length > 0) resolve(messages);
          }),
        );
        raw.destroy();
        const { ok, error } = answer as { ok: boolean; error: { code: string; message: string } };
        assert.equal(ok, false);
        assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
        assert.match(error.message, /nested deeper than 128 levels/);
        // A manifest's own limits are its parser's to report, a __proto__ key among them.
        const sneaky = JSON.parse(
          JSON.stringify(manifest({ id: 'sneaky' })).replace(
            '"trust"',
            '"__proto__":{"x":1},"trust"',
          ),
        ) as JsonObject;
        await assert.rejects(
          client.request('agents.deploy', { document: sneaky }),
          (error: unknown) => {
            assert.ok(isKeelError(error));
            assert.equal(error.code, 'KEEL_MANIFEST_INVALID');
            assert.match(error.message, /__proto__/);
            return true;
          },
        );
        assert.deepEqual(await client.request('agents.list', {}), []);
        // A task of nothing but white space is no task.
        await node.runtime.deploy(manifest({ id: 'idle' }), 'test');
        await assert.rejects(
          client.request('runs.submit', { agent: 'idle', prompt: ' \n\t ' }),
          (error: unknown) => {
            assert.ok(isKeelError(error));
            assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
            assert.match(error.message, /the task is empty/);
            return true;
          },
        );
        assert.deepEqual(await node.storage.runs.list({ limit: 10 }), []);
      },
      { development: true },
    );
  });

  it('refuses to start on a data directory that agent workers could read', async () => {
    await mkdir(join(PROJECT_ROOT, 'node_modules', '.cache'), { recursive: true });
    const dataDirectory = await mkdtemp(
      join(PROJECT_ROOT, 'node_modules', '.cache', 'keel-runtime-data-'),
    );
    try {
      await assert.rejects(startWith(dataDirectory, {}), (error: unknown) => {
        assert.ok(isKeelError(error));
        assert.equal(error.code, 'KEEL_CONFIG_INVALID');
        assert.match(error.message, /every agent worker can read; move it/);
        return true;
      });
    } finally {
      await rm(dataDirectory, { recursive: true, force: true });
    }
  });

  it('dead-letters a run whose worker keeps crashing, and records each crash in the history', async () => {
    await withNode(
      async (node, modules) => {
        const path = await writeModule(
          modules,
          'crasher',
          '  await context.now();\n  process.exit(3);',
        );
        await node.runtime.deploy(
          manifest({
            id: 'crasher',
            program: { module: path },
            capabilities: [{ kind: 'clock.now' }],
            limits: { maxAttempts: 2 },
          }),
          'test',
        );
        const run = await runToEnd(node, 'crasher', 'crash');
        assert.equal(run.status, 'dead-lettered');
        assert.equal(run.attempts, 2);
        assert.equal((run.error as { code?: string }).code, 'KEEL_WORKER_CRASHED');
        // The journal kept the first call once, although the program ran twice.
        assert.equal((await node.storage.runs.listJournal(run.id)).length, 1);
        const history = (await node.runtime.show('crasher')).history;
        assert.ok(history.filter((change) => change.to === 'crashed').length >= 2);
        assert.ok(history.some((change) => change.to === 'restarting'));
      },
      { development: true },
    );
  });

  it('finishes a run out of attempts whose end a crash kept off the record from its journal alone', async () => {
    await withNode(
      async (node, modules, reopen) => {
        const deploy = async (id: string) => {
          const module = await writeModule(
            modules,
            id,
            '  const first = await context.now();\n  const second = await context.now();\n  return { first, second };',
          );
          await node.runtime.deploy(
            manifest({
              id,
              program: { module },
              capabilities: [{ kind: 'clock.now' }],
              limits: { maxAttempts: 1 },
            }),
            'test',
          );
        };
        await deploy('finished');
        await deploy('halfway');
        const finished = await runToEnd(node, 'finished', 'go');
        const halfway = await runToEnd(node, 'halfway', 'go');
        assert.deepEqual([finished.status, halfway.status], ['succeeded', 'succeeded']);
        // The node dies as each run's end reaches storage, before it is committed: the runs are
        // still running, on their only attempt. One had journaled both its calls; the other,
        // only its first (as if its worker had crashed after it).
        const reopened = await reopen({ development: true }, (databaseFile) => {
          const database = new DatabaseSync(databaseFile);
          try {
            database
              .prepare("UPDATE runs SET status = 'running', result = NULL WHERE id IN (?, ?)")
              .run(finished.id, halfway.id);
            database
              .prepare('DELETE FROM run_journal WHERE run_id = ? AND seq = 2')
              .run(halfway.id);
          } finally {
            database.close();
          }
        });
        const replayed = await ended(reopened, finished.id);
        assert.deepEqual(
          [replayed.status, replayed.attempts, replayed.result],
          ['succeeded', 1, finished.result],
          'its replay ended as the run had, with the times its journal holds',
        );
        const cut = await ended(reopened, halfway.id);
        assert.deepEqual([cut.status, cut.attempts], ['dead-lettered', 1]);
        assert.equal(
          (await reopened.storage.runs.listJournal(halfway.id)).length,
          1,
          'its last replay made no new call',
        );
      },
      { development: true },
    );
  });

  it('keeps an agent stopped when the node no longer trusts how it was deployed', async () => {
    await withNode(
      async (node, modules, reopen) => {
        const module = await writeModule(modules, 'loose', 'return { ok: true };');
        await node.runtime.deploy(signed(manifest({ id: 'vouched' })), 'test');
        await node.runtime.deploy(manifest({ id: 'loose', program: { module } }), 'test');
        // The publisher's key leaves trusted_keys, and development mode is off.
        let reopened = await reopen({ development: false, trustPublisher: false });
        for (const [name, code] of [
          ['vouched', 'KEEL_MANIFEST_UNTRUSTED_KEY'],
          ['loose', 'KEEL_MANIFEST_UNSIGNED'],
        ] as const) {
          const shown = await reopened.runtime.show(name);
          assert.equal(shown.agent.state, 'stopped', `${name} was not started`);
          assert.match(shown.history.at(-1)?.reason ?? '', /trusted_keys|development mode/);
          await rejectsWith(reopened.runtime.lifecycle(name, 'restart', 'operator:ana'), code);
          await rejectsWith(reopened.runtime.lifecycle(name, 'start', 'operator:ana'), code);
          await rejectsWith(
            reopened.runtime.submitRun(name, { prompt: 'x' }, { origin: 'test', actor: 'test' }),
            'KEEL_AGENT_NOT_RUNNING',
          );
        }
        const denied = (await reopened.storage.audit.tail(50)).filter(
          (entry) => entry.outcome === 'denied' && entry.kind.startsWith('agent.'),
        );
        assert.deepEqual(
          denied.map((entry) => [
            entry.kind,
            entry.actor.startsWith('node:') ? 'node' : entry.actor,
            entry.subject,
            entry.code,
          ]),
          [
            // At start, in the order of names.
            ['agent.start', 'node', 'loose', 'KEEL_MANIFEST_UNSIGNED'],
            ['agent.start', 'node', 'vouched', 'KEEL_MANIFEST_UNTRUSTED_KEY'],
            ['agent.restart', 'operator:ana', 'vouched', 'KEEL_MANIFEST_UNTRUSTED_KEY'],
            ['agent.start', 'operator:ana', 'vouched', 'KEEL_MANIFEST_UNTRUSTED_KEY'],
            ['agent.restart', 'operator:ana', 'loose', 'KEEL_MANIFEST_UNSIGNED'],
            ['agent.start', 'operator:ana', 'loose', 'KEEL_MANIFEST_UNSIGNED'],
          ],
        );
        // Trusted again, the signed agent may start again, by an operator.
        reopened = await reopen({ development: false });
        assert.equal((await reopened.runtime.show('vouched')).agent.state, 'stopped');
        assert.equal(
          (await reopened.runtime.lifecycle('vouched', 'start', 'operator:ana')).state,
          'running',
        );
        // The agent deployed unsigned, its same manifest now signed by a trusted key: deployed
        // again under that key (not "unchanged", which left it unsigned and stopped for good).
        const deployed = await reopened.runtime.deploy(
          signed(manifest({ id: 'loose', program: { module } })),
          'test',
        );
        assert.equal(deployed.outcome, 'redeployed');
        assert.notEqual((await reopened.runtime.show('loose')).agent.signedBy, null);
        assert.equal(
          (await reopened.runtime.lifecycle('loose', 'start', 'operator:ana')).state,
          'running',
        );
      },
      { development: true },
    );
  });

  it('deploys one version at a time: of two sent at once, the older one is refused', async () => {
    await withNode(async (node) => {
      const versioned = (version: string, kind: string) =>
        signed(manifest({ id: 'raced', version, capabilities: [{ kind: 'log' }, { kind }] }));
      await node.runtime.deploy(versioned('1.0.0', 'clock.now'), 'operator:ana');
      const [newer, older] = await Promise.allSettled([
        node.runtime.deploy(versioned('2.0.0', 'random'), 'operator:ana'),
        node.runtime.deploy(versioned('1.5.0', 'clock.now'), 'operator:bo'),
      ]);
      assert.equal(newer.status === 'fulfilled' && newer.value.outcome, 'updated');
      assert.ok(
        older.status === 'rejected' &&
          isKeelError(older.reason) &&
          older.reason.code === 'KEEL_MANIFEST_DOWNGRADE',
        'the older version is refused',
      );
      const { agent, manifest: deployed } = await node.runtime.show('raced');
      assert.equal(deployed.version, '2.0.0');
      const grants = await node.storage.grants.listActive(agent.id, Date.now());
      assert.deepEqual(grants.map((stored) => stored.grant.kind).sort(), ['log', 'random']);
    });
  });

  it('does not interleave a remove and a deploy of one agent', async () => {
    await withNode(async (node) => {
      const versioned = (version: string) =>
        signed(manifest({ id: 'churn', version, capabilities: [{ kind: 'log' }] }));
      await node.runtime.deploy(versioned('1.0.0'), 'operator:ana');
      for (const [index, removeFirst] of [true, false].entries()) {
        const remove = () => node.runtime.lifecycle('churn', 'remove', 'operator:bo');
        const deploy = () => node.runtime.deploy(versioned(`1.${index + 1}.0`), 'operator:ana');
        await Promise.allSettled(removeFirst ? [remove(), deploy()] : [deploy(), remove()]);
        const agent = await node.storage.agents.getByName('churn');
        assert.ok(agent !== undefined);
        const grants = await node.storage.grants.listActive(agent.id, Date.now());
        assert.deepEqual(
          [agent.state, grants.length],
          removeFirst ? ['running', 1] : ['removed', 0],
          `${removeFirst ? 'remove, then deploy' : 'deploy, then remove'}: ${agent.state} with ${grants.length} grants`,
        );
      }
    });
  });

  it('puts a manifest’s budget in place before its grants, on a first deploy and on an update', async () => {
    await withNode(async (node) => {
      const budgeted = (version: string, calls: number) =>
        signed(
          manifest({
            id: 'budgeted',
            version,
            capabilities: [{ kind: 'log' }, { kind: 'clock.now' }],
            budgets: { agent: { calls } },
          }),
        );
      for (const [version, calls] of [
        ['1.0.0', 100],
        ['1.1.0', 50],
      ] as const) {
        await node.runtime.deploy(budgeted(version, calls), 'operator:ana');
        const deployed = (await node.storage.audit.tail(20)).filter(
          (entry) =>
            (entry.kind === 'budget.limits' || entry.kind.startsWith('capability.')) &&
            entry.actor.startsWith('operator:ana'),
        );
        const order = deployed.map((entry) => entry.kind);
        const lastLimits = order.lastIndexOf('budget.limits');
        assert.ok(lastLimits >= 0, `${version} set its limits`);
        assert.ok(
          order.slice(lastLimits + 1).includes('capability.grant'),
          `${version}: its grants came after its limits (${order.join(', ')})`,
        );
        const { agent } = await node.runtime.show('budgeted');
        assert.equal((await node.kernel.budgets.get(`agent:${agent.id}`))?.limits.calls, calls);
      }
    });
  });

  it('asks a human once for a chat that waited for them across a restart of the node', async () => {
    await using mock = await MockLlmServer.start({});
    const options: NodeOptions = {
      development: true,
      more: `
[models.providers.mock]
kind = "openai-compatible"
base_url = "${mock.openAiBaseUrl}"

[models.aliases]
default = ["mock/mock-small"]

[[approvals.rules]]
kind = "llm.chat"
resource = "default"
trust_levels = ["untrusted"]
`,
    };
    await withNode(async (node, modules, reopen) => {
      // Its second chat continues its first: it sends the node only what it adds.
      const module = await writeModule(
        modules,
        'asker',
        `  const one = { role: 'user', content: 'one' };
  const first = await context.chat('default', { messages: [one] });
  const second = await context.chat('default', {
    messages: [one, { role: 'assistant', content: first.text }, { role: 'user', content: 'two' }],
  });
  return second.text;`,
      );
      await node.runtime.deploy(
        manifest({
          id: 'asker',
          program: { module },
          capabilities: [{ kind: 'llm.chat', resource: 'default' }],
        }),
        'test',
      );
      const { id } = await node.runtime.submitRun(
        'asker',
        { prompt: 'ask' },
        { origin: 'test', actor: 'test' },
      );
      /** The approval the run waits for next (after `after`, decided already). */
      const suspendedOn = async (current: KeelNode, after?: string): Promise<string> => {
        for (let waited = 0; waited < 30_000; waited += 25) {
          const run = await current.storage.runs.get(id);
          const approvalId = (run?.error as { details?: { approvalId?: unknown } } | null)?.details
            ?.approvalId;
          if (
            run?.status === 'suspended' &&
            typeof approvalId === 'string' &&
            approvalId !== after
          ) {
            return approvalId;
          }
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        throw new Error(`run ${id} did not wait for an approval`);
      };
      const first = await suspendedOn(node);
      await node.kernel.approvals.decide(first, 'approved', 'operator:ana');
      const second = await suspendedOn(node, first);
      // The node restarts while a human decides: it no longer holds the run's conversation.
      const reopened = await reopen(options);
      await reopened.kernel.approvals.decide(second, 'approved', 'operator:ana');
      const run = await ended(reopened, id);
      assert.equal(run.status, 'succeeded', JSON.stringify(run.error));
      assert.equal(run.result, 'mock reply to: two');
      const approvals = (await reopened.kernel.approvals.list())
        .filter((approval) => approval.runId === id)
        .sort((a, b) => Number(a.seq) - Number(b.seq));
      assert.deepEqual(
        approvals.map((approval) => [approval.seq, approval.state, approval.consumedAt !== null]),
        [
          [1, 'approved', true],
          [2, 'approved', true],
        ],
        'one approval a chat: the second chat, sent whole after the restart, used its own',
      );
      const journal = await reopened.storage.runs.listJournal(id);
      assert.deepEqual(
        journal.map((entry) => [entry.seq, entry.kind, entry.outcome]),
        [
          [1, 'llm.chat', 'ok'],
          [3, 'llm.chat', 'ok'],
        ],
        'the continuation the restarted node could not serve was refused, not journaled',
      );
      // The run ended: nothing will continue its conversation, which the node lets go.
      for (let waited = 0; reopened.models.heldConversations.runs > 0; waited += 25) {
        assert.ok(waited < 5_000, 'the ended run’s conversation is still held');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }, options);
  });

  it('starts no scheduled or submitted run for an agent left crashed past its restart budget', async () => {
    await withNode(
      async (node, modules) => {
        const module = await writeModule(modules, 'faller', '  process.exit(3);');
        await node.runtime.deploy(
          manifest({
            id: 'faller',
            program: { module },
            limits: { maxAttempts: 1 },
            schedule: [{ every: '1s', task: { prompt: 'fall' } }],
          }),
          'test',
        );
        const crashes = async () =>
          (await node.runtime.show('faller')).history.filter((change) => change.to === 'crashed')
            .length;
        // A restart budget of one: the first crash restarts it, the second leaves it down.
        for (let waited = 0; waited < 20_000 && (await crashes()) < 2; waited += 100) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(await crashes(), 2);
        assert.equal((await node.runtime.show('faller')).agent.state, 'crashed');
        const scheduled = async () =>
          (await node.storage.runs.list({ limit: 1000 })).filter(
            (run) => run.origin === 'schedule:0',
          );
        const atGiveUp = (await scheduled()).length;
        assert.equal(atGiveUp, 2, 'one run per crash');
        await new Promise((resolve) => setTimeout(resolve, 2500));
        assert.equal((await scheduled()).length, atGiveUp, 'no run piled up while it was down');
        await rejectsWith(
          node.runtime.submitRun('faller', { prompt: 'x' }, { origin: 'test', actor: 'test' }),
          'KEEL_AGENT_NOT_RUNNING',
        );
        // An operator's restart gives it a fresh budget, and the schedule fires again.
        assert.equal((await node.runtime.lifecycle('faller', 'restart', 'test')).state, 'running');
        for (let waited = 0; waited < 10_000 && (await scheduled()).length === atGiveUp; ) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          waited += 100;
        }
        assert.ok((await scheduled()).length > atGiveUp);
      },
      { development: true, restartBudget: 1 },
    );
  });

  it('kills a silent worker with the watchdog and contains one over its memory cap', async () => {
    await withNode(
      async (node, modules) => {
        const spinner = await writeModule(modules, 'spinner', '  for (;;) {}');
        const hog = await writeModule(
          modules,
          'hog',
          '  const kept = [];\n  for (;;) kept.push(Buffer.alloc(1024 * 1024, 1));',
        );
        for (const [id, path] of [
          ['spinner', spinner],
          ['hog', hog],
        ] as const) {
          await node.runtime.deploy(
            manifest({ id, program: { module: path }, limits: { maxAttempts: 1, memoryMb: 64 } }),
            'test',
          );
        }
        const [spun, hogged] = await Promise.all([
          runToEnd(node, 'spinner', 'spin'),
          runToEnd(node, 'hog', 'allocate'),
        ]);
        assert.equal(spun.status, 'dead-lettered');
        assert.match(String((spun.error as { message?: string }).message), /watchdog/);
        assert.equal(hogged.status, 'dead-lettered');
        const hogHistory = (await node.runtime.show('hog')).history;
        assert.ok(hogHistory.some((change) => change.to === 'crashed'));
        // The node itself is fine and still answers.
        assert.equal(node.health().ready, true);
      },
      { development: true },
    );
  });

  it('pauses, resumes, stops and removes an agent, keeping every transition', async () => {
    await withNode(
      async (node) => {
        await node.runtime.deploy(manifest({ id: 'lifecycle' }), 'test');
        assert.equal((await node.runtime.lifecycle('lifecycle', 'pause', 'test')).state, 'paused');
        assert.equal(
          (await node.runtime.lifecycle('lifecycle', 'resume', 'test')).state,
          'running',
        );
        assert.equal((await node.runtime.lifecycle('lifecycle', 'stop', 'test')).state, 'stopped');
        await assert.rejects(
          node.runtime.submitRun('lifecycle', { prompt: 'x' }, { origin: 'test', actor: 'test' }),
          (error: unknown) =>
            isKeelError(error) &&
            error.code === 'KEEL_AGENT_NOT_RUNNING' &&
            error.hint === 'start it with `keel agent start lifecycle`, then submit the run again',
        );
        assert.equal(
          (await node.runtime.lifecycle('lifecycle', 'restart', 'test')).state,
          'running',
        );
        const agentId = (await node.runtime.show('lifecycle')).agent.id;
        await node.runtime.lifecycle('lifecycle', 'remove', 'test');
        await rejectsWith(node.runtime.show('lifecycle'), 'KEEL_NOT_FOUND');
        const grants = await node.kernel.capabilities.list(agentId);
        assert.ok(grants.length > 0 && grants.every((grant) => grant.revokedAt !== null));
        const history = await node.storage.agents.history(agentId, 100);
        assert.deepEqual(
          history.map((change) => change.to),
          [
            'starting',
            'running',
            'paused',
            'running',
            'stopping',
            'stopped',
            'starting',
            'running',
            'stopping',
            // Stopped, and marked removed once its grants and runs are dealt with.
            'stopped',
            'removed',
          ],
        );
      },
      { development: true },
    );
  });

  it('keeps a paused agent paused through a new version, and says why an action does nothing', async () => {
    await withNode(
      async (node) => {
        await node.runtime.deploy(manifest({ id: 'held' }), 'test');
        await rejectsWith(node.runtime.lifecycle('held', 'resume', 'test'), 'KEEL_CONFLICT');
        assert.equal((await node.runtime.lifecycle('held', 'pause', 'test')).state, 'paused');
        await rejectsWith(node.runtime.lifecycle('held', 'pause', 'test'), 'KEEL_CONFLICT');
        const updated = await node.runtime.deploy(
          manifest({ id: 'held', version: '1.1.0' }),
          'test',
        );
        assert.equal(updated.outcome, 'updated');
        const shown = await node.runtime.show('held');
        assert.equal(shown.agent.state, 'paused', 'a deployment is no resume');
        assert.equal(shown.history.at(-1)?.reason, 'paused before the deployment');
        assert.equal((await node.runtime.lifecycle('held', 'resume', 'test')).state, 'running');
        assert.equal((await node.runtime.lifecycle('held', 'stop', 'test')).state, 'stopped');
        await rejectsWith(
          node.runtime.lifecycle('held', 'pause', 'test'),
          'KEEL_AGENT_NOT_RUNNING',
        );
        assert.equal((await node.runtime.lifecycle('held', 'start', 'test')).state, 'running');
        // Starting a running agent leaves it be.
        assert.equal((await node.runtime.lifecycle('held', 'start', 'test')).state, 'running');
      },
      { development: true },
    );
  });

  it('resumes the runs of an agent on its new version when it is redeployed', async () => {
    await withNode(
      async (node, modules) => {
        const module = await writeModule(
          modules,
          'slow',
          `const startedAt = await context.now();
await new Promise((resolve) => setTimeout(resolve, 1500));
return { startedAt };`,
        );
        await node.runtime.deploy(manifest({ id: 'slow', program: { module } }), 'test');
        const run = await node.runtime.submitRun(
          'slow',
          { prompt: 'x' },
          { origin: 'test', actor: 'test' },
        );
        for (let waited = 0; waited < 10_000; waited += 20) {
          if ((await node.storage.runs.journalHead(run.id)) >= 1) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const updated = await node.runtime.deploy(
          manifest({ id: 'slow', version: '1.0.1', program: { module } }),
          'test',
        );
        assert.equal(updated.outcome, 'updated');
        let ended: RunRecord | undefined;
        for (let waited = 0; waited < 30_000 && ended === undefined; waited += 50) {
          const current = await node.storage.runs.get(run.id);
          if (current !== undefined && FINAL_RUN_STATUSES.includes(current.status)) ended = current;
          else await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(
          ended?.status,
          'succeeded',
          JSON.stringify([
            ended,
            await node.storage.runs.get(run.id),
            (await node.runtime.show('slow')).history,
          ]),
        );
        const journal = await node.storage.runs.listJournal(run.id);
        assert.deepEqual(
          journal.map((entry) => entry.kind),
          ['clock.now'],
          'the replay on the new worker reused the recorded time',
        );
        assert.deepEqual(ended?.result, { startedAt: journal[0]?.result });
      },
      { development: true },
    );
  });

  it('starts runs on an interval schedule, and none while the agent is stopped', async () => {
    await withNode(
      async (node, modules) => {
        const module = await writeModule(modules, 'ticker', 'return { ticked: true };');
        await node.runtime.deploy(
          manifest({
            id: 'ticker',
            program: { module },
            schedule: [{ every: '1s', task: { prompt: 'tick' } }],
          }),
          'test',
        );
        const scheduled = async () =>
          (await node.storage.runs.list({ limit: 1000 })).filter(
            (run) => run.origin === 'schedule:0',
          );
        for (let waited = 0; waited < 15_000; waited += 100) {
          const runs = await scheduled();
          if (runs.filter((run) => run.status === 'succeeded').length >= 2) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const fired = await scheduled();
        assert.ok(
          fired.filter((run) => run.status === 'succeeded').length >= 2,
          `scheduled runs: ${JSON.stringify(fired.map((run) => run.status))}`,
        );
        assert.ok(fired.every((run) => (run.task as { prompt?: string }).prompt === 'tick'));
        await node.runtime.lifecycle('ticker', 'stop', 'test');
        const atStop = (await scheduled()).length;
        await new Promise((resolve) => setTimeout(resolve, 2500));
        assert.equal((await scheduled()).length, atStop, 'no run was created while stopped');
      },
      { development: true },
    );
  });
});
