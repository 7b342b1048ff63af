import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { childEnvironment, KEEL_BIN, runKeel, startKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  for (let waited = 0; waited < timeoutMs; waited += 100) {
    if (check()) return;
    await sleep(100);
  }
}

describe('keel start --demo, keel run, keel runs, keel agent', { timeout: 120_000 }, () => {
  it('shows a complete demo run, then runs the demo agent again from another terminal', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'data');
    await using keel = await startKeel(['--demo', '--data-dir', dataDirectory, '--port', '0']);
    await waitFor(() => /demo run run_\S+ (succeeded|failed)/.test(keel.stdout()), 30_000);
    // The answer is printed after the status line, and may arrive in a later chunk.
    await waitFor(() => /Your first hour|failed/.test(keel.stdout()), 10_000);
    const demo = keel.stdout();
    assert.match(demo, /demo run run_\S+ succeeded/);
    assert.match(demo, /#1 llm\.chat demo/);
    assert.match(demo, /tool\.call notes\.add/);
    assert.match(demo, /Your first hour/);
    // A newcomer's first run shows no warning: the demo model is priced (at zero).
    assert.doesNotMatch(keel.stderr(), /has no price/);

    const followed = await runKeel([
      'run',
      'demo',
      'Plan my first hour with Keel',
      '--follow',
      '--data-dir',
      dataDirectory,
    ]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stdout, /✓ #2 tool\.call notes\.add/);
    assert.match(followed.stdout, /run run_\S+ succeeded/);

    const listed = await runKeel(['runs', 'list', '--json', '--data-dir', dataDirectory]);
    assert.equal(listed.code, 0, listed.stderr);
    const runs = JSON.parse(listed.stdout) as { status: string; steps: number; origin: string }[];
    assert.equal(runs.length, 2);
    assert.ok(runs.every((run) => run.status === 'succeeded' && run.steps === 7));
    assert.deepEqual(runs.map((run) => run.origin).sort(), ['cli', 'demo']);

    const agents = await runKeel(['agent', 'list', '--data-dir', dataDirectory]);
    assert.equal(agents.code, 0, agents.stderr);
    assert.match(agents.stdout, /demo\s+1\.0\.0\s+running/);

    // Ctrl-C while following stops following, at once, and leaves the run queued.
    const paused = await runKeel(['agent', 'pause', 'demo', '--data-dir', dataDirectory]);
    assert.equal(paused.code, 0, paused.stderr);
    const follower = spawn(
      process.execPath,
      [KEEL_BIN, 'run', 'demo', 'Wait for me', '--follow', '--data-dir', dataDirectory],
      { env: childEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let interruptedOutput = '';
    follower.stdout.on('data', (chunk: Buffer) => {
      interruptedOutput += chunk.toString('utf8');
    });
    const closed = once(follower, 'close') as Promise<[number | null]>;
    await waitFor(() => /run run_\S+ \(demo\)/.test(interruptedOutput), 10_000);
    follower.kill('SIGINT');
    const [interruptedCode] = await closed;
    assert.equal(interruptedCode, 130);
    assert.match(interruptedOutput, /stopped following run_\S+; the run goes on/);
    const resumed = await runKeel(['agent', 'resume', 'demo', '--data-dir', dataDirectory]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const again = await runKeel(['agent', 'resume', 'demo', '--data-dir', dataDirectory]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /demo is running already — nothing to resume.*\[KEEL_CONFLICT\]/);
    const stoppedAgent = await runKeel(['agent', 'stop', 'demo', '--data-dir', dataDirectory]);
    assert.match(stoppedAgent.stdout, /demo is stopped/);
    const started = await runKeel(['agent', 'start', 'demo', '--data-dir', dataDirectory]);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /demo is running/);

    const unknown = await runKeel(['run', 'nobody', 'hello', '--data-dir', dataDirectory]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /KEEL_NOT_FOUND/);

    await keel.stop();
    const stopped = await runKeel(['runs', 'list', '--data-dir', dataDirectory]);
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, /KEEL_NODE_NOT_RUNNING/);
    assert.match(stopped.stderr, /keel start/);
  });

  it('refuses --demo in production mode and production with development, saying why', async () => {
    await using directory = await temporaryDirectory('keel-cli-modes-');
    const dataDirectory = join(directory.path, 'data');
    const demo = await runKeel(['start', '--demo', '--data-dir', dataDirectory], {
      env: childEnvironment({ KEEL_PRODUCTION: '1' }),
    });
    // A flag the node's mode rules out is a command line to change: exit code 2.
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /--demo runs in development mode and cannot run in production mode/);
    const both = await runKeel([
      'start',
      '--production',
      '--development',
      '--data-dir',
      dataDirectory,
    ]);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /production mode \(--production\) cannot accept unsigned manifests/);
  });
});
