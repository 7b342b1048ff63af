import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import {
  createProcessTools,
  sandboxedProcessLauncher,
} from '../../src/services/tools/builtin/process-tools.ts';
import {
  ProcessSupervisor,
  type ProcessSupervisorSettings,
} from '../../src/services/tools/processes/process-supervisor.ts';
import { ToolRegistry } from '../../src/services/tools/tool-registry.ts';
import { rejectsWithCode } from '../support/assertions.ts';
import { createToolRig, type ToolRig } from '../support/tool-rig.ts';

const ps = promisify(execFile);

/** A server-like script: says it is ready after a while, answers SIGUSR1 and SIGTERM. */
const SERVER = `
const name = process.argv[2] ?? 'server';
setTimeout(() => console.log(name + ' ready'), 150);
process.on('SIGUSR1', () => console.log(name + ' got usr1'));
process.on('SIGTERM', () => { console.log(name + ' got term'); process.exit(0); });
setInterval(() => {}, 1000);
`;
const FILES = {
  'server.js': SERVER,
  'crash.js': "console.error('boom'); process.exit(3);",
  'silent.js': 'setInterval(() => {}, 1000);',
  'stubborn.js':
    "process.on('SIGTERM', () => console.log('ignoring term')); setInterval(() => {}, 1000);",
  'chatty.js': "process.stdout.write('x'.repeat(10000) + '\\nkey AKIAIOSFODNN7EXAMPLE\\n');",
};

describe('process tools', { timeout: 120_000 }, () => {
  let rig: ToolRig;
  let supervisor: ProcessSupervisor;
  let tools: ToolRegistry;
  const settings: ProcessSupervisorSettings = {
    maxPerAgent: 3,
    lifetimeMs: 60_000,
    logBytes: 4096,
    stopGraceMs: 2000,
  };
  const call = (agent: string, tool: string, args: JsonObject = {}) =>
    rig.call(tools, agent, tool, args) as Promise<JsonObject>;

  before(async () => {
    rig = await createToolRig();
    supervisor = new ProcessSupervisor(
      sandboxedProcessLauncher(rig.workspaces, rig.settings),
      settings,
    );
    tools = new ToolRegistry(createProcessTools(supervisor));
    await rig.workspace('agent_a', FILES);
    await rig.workspace('agent_b', FILES);
  });
  after(async () => {
    await supervisor.close();
    await rig[Symbol.asyncDispose]();
  });

  it('starts a process, waits for its ready text, shows its logs and stops it', async () => {
    const started = await call('agent_a', 'process_start', {
      command: 'node server.js web',
      name: 'web',
      readyText: 'web ready',
    });
    assert.equal(started.state, 'running');
    assert.equal(started.name, 'web');
    assert.ok((started.sandbox as string[]).includes('bubblewrap'));
    const id = started.id as string;
    const listed = (await call('agent_a', 'process_list')).processes as JsonObject[];
    assert.deepEqual(
      listed.map((entry) => entry.id),
      [id],
    );
    const logs = await call('agent_a', 'process_logs', { id });
    assert.match(logs.text as string, /web ready/);
    assert.equal(logs.nextOffset, logs.total);
    const signalled = await call('agent_a', 'process_signal', { id, signal: 'SIGUSR1' });
    assert.equal(signalled.delivered, 1);
    await waitFor(async () =>
      /got usr1/.test((await call('agent_a', 'process_logs', { id })).text as string),
    );
    const stopped = await call('agent_a', 'process_stop', { id });
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.exitCode, 0);
    const tail = await call('agent_a', 'process_logs', { id, offset: logs.nextOffset as number });
    assert.match(tail.text as string, /got term/);
    await assertNoProcess('server.js web');
  });

  it('marks a process whose ready text never comes unhealthy, and kills one that ignores SIGTERM', async () => {
    const started = await call('agent_a', 'process_start', {
      command: 'node stubborn.js',
      readyText: 'never printed',
      readyTimeoutMs: 300,
    });
    assert.equal(started.state, 'unhealthy');
    assert.match(started.reason as string, /did not appear within 300 ms/);
    const stopped = await call('agent_a', 'process_stop', {
      id: started.id as string,
      graceMs: 200,
    });
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.signal, 'SIGKILL');
    const logs = await call('agent_a', 'process_logs', { id: started.id as string });
    assert.match(logs.text as string, /ignoring term/);
    await assertNoProcess('stubborn.js');
  });

  it('restarts a failing process by its policy and gives up after maxRestarts', async () => {
    const started = await call('agent_a', 'process_start', {
      command: 'node crash.js',
      restart: 'on-failure',
      maxRestarts: 2,
    });
    const id = started.id as string;
    await waitFor(async () => supervisor.show('agent_a', id).state === 'failed');
    const shown = supervisor.show('agent_a', id);
    assert.equal(shown.restarts, 2);
    assert.equal(shown.exitCode, 3);
    assert.equal(shown.reason, 'gave up after 2 restarts');
    const text = (await call('agent_a', 'process_logs', { id })).text as string;
    assert.equal(text.match(/boom/g)?.length, 3);
    assert.match(text, /\[keel\] restart 2 of 2/);
  });

  it('pages logs by byte offset, says what was dropped and redacts secrets', async () => {
    const started = await call('agent_a', 'process_start', { command: 'node chatty.js' });
    const id = started.id as string;
    await waitFor(async () => supervisor.show('agent_a', id).state === 'exited');
    const first = await call('agent_a', 'process_logs', { id, limit: 100 });
    assert.ok((first.dropped as number) > 5000, 'the 4 KiB ring dropped the start');
    assert.equal(first.offset, (first.total as number) - 4096);
    assert.equal(first.nextOffset, (first.offset as number) + 100);
    const rest = await call('agent_a', 'process_logs', { id, offset: first.nextOffset as number });
    assert.equal(rest.dropped, 0);
    assert.doesNotMatch(rest.text as string, /AKIAIOSFODNN7EXAMPLE/);
    assert.match(rest.text as string, /key \[REDACTED/);
  });

  it("keeps agents apart: another agent's process is not found", async () => {
    const started = await call('agent_b', 'process_start', { command: 'node silent.js' });
    const id = started.id as string;
    await rejectsWithCode(call('agent_a', 'process_stop', { id }), 'KEEL_NOT_FOUND');
    await rejectsWithCode(
      call('agent_a', 'process_signal', { id, signal: 'SIGKILL' }),
      'KEEL_NOT_FOUND',
    );
    await rejectsWithCode(call('agent_a', 'process_logs', { id }), 'KEEL_NOT_FOUND');
    assert.ok(!supervisor.list('agent_a').some((entry) => entry.id === id));
    assert.equal(supervisor.show('agent_b', id).state, 'running');
    await call('agent_b', 'process_stop', { id });
    await rejectsWithCode(
      call('agent_b', 'process_signal', { id, signal: 'SIGTERM' }),
      'KEEL_CONFLICT',
    );
  });

  it('refuses bad input: shell syntax, unknown signals, pids and malformed ids', async () => {
    await rejectsWithCode(
      call('agent_a', 'process_start', { command: 'node server.js; rm -rf .' }),
      'KEEL_POLICY_VIOLATION',
    );
    await rejectsWithCode(
      call('agent_a', 'process_start', { command: 'sh -c id' }),
      'KEEL_POLICY_VIOLATION',
    );
    for (const args of [
      { id: 'proc_000000000000', signal: 'SIGSTOP' },
      { id: '1', signal: 'SIGTERM' },
      { id: String(process.pid), signal: 'SIGKILL' },
      { id: 'proc_000000000000', signal: 'SIGTERM', pid: 1 },
    ]) {
      await rejectsWithCode(call('agent_a', 'process_signal', args), 'KEEL_INVALID_ARGUMENT');
    }
    await rejectsWithCode(
      call('agent_a', 'process_logs', { id: 'proc_000000000000' }),
      'KEEL_NOT_FOUND',
    );
  });

  it('refuses more processes than an agent may run at once', async () => {
    const ids: string[] = [];
    for (let index = 0; index < settings.maxPerAgent; index += 1) {
      ids.push(
        (await call('agent_a', 'process_start', { command: 'node silent.js' })).id as string,
      );
    }
    await rejectsWithCode(
      call('agent_a', 'process_start', { command: 'node silent.js' }),
      'KEEL_POLICY_VIOLATION',
    );
    for (const id of ids) await call('agent_a', 'process_stop', { id, graceMs: 0 });
    assert.equal((await call('agent_a', 'process_start', { command: 'true' })).state, 'running');
  });

  it('stops every process when the node closes', async () => {
    const own = new ProcessSupervisor(
      sandboxedProcessLauncher(rig.workspaces, rig.settings),
      settings,
    );
    const view = await own.start({
      agentId: 'agent_b',
      command: 'node server.js closing',
      argv: ['node', 'server.js', 'closing'],
      readyText: 'closing ready',
    });
    await own.close();
    assert.equal(own.show('agent_b', view.id).state, 'stopped');
    await assertNoProcess('server.js closing');
    await rejectsWithCode(
      own.start({ agentId: 'agent_b', command: 'true', argv: ['true'] }),
      'KEEL_SHUTTING_DOWN',
    );
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function assertNoProcess(text: string): Promise<void> {
  const { stdout } = await ps('ps', ['-eo', 'args']);
  assert.ok(!stdout.split('\n').some((line) => line.includes(text)), `${text} still runs`);
}
