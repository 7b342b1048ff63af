import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runKeel, startKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

describe('keel estop and keel robot, against a running node', { timeout: 120_000 }, () => {
  it('engages, shows, refuses to release twice, releases with a note, and Ctrl-C sets the latch (all audited)', async () => {
    await using directory = await temporaryDirectory('keel-estop-');
    const data = join(directory.path, 'data');
    await mkdir(data, { mode: 0o700 });
    await writeFile(
      join(data, 'config.toml'),
      '[log]\nlevel = "silent"\n\n[robotics]\nenabled = true\n',
      { mode: 0o600 },
    );
    const at = ['--data-dir', data];
    {
      await using keel = await startKeel([...at, '--port', '0'], { timeoutMs: 30_000 });
      const before = JSON.parse((await runKeel(['robot', 'status', '--json', ...at])).stdout);
      assert.equal(before.estop.engaged, false);
      assert.equal(before.robotId, 'rover-1');

      const engaged = await runKeel(['estop', ...at]);
      assert.equal(engaged.code, 0, engaged.stderr);
      assert.match(engaged.stdout, /E-STOP ENGAGED/);
      const shown = await runKeel(['robot', 'status', ...at]);
      assert.match(shown.stdout, /e-stop {4}ENGAGED \(operator\)/);

      const released = await runKeel([
        'estop',
        '--release',
        '--note',
        'bay clear',
        '--json',
        ...at,
      ]);
      assert.deepEqual(JSON.parse(released.stdout), { engaged: false, changed: true });
      const again = await runKeel(['estop', '--release', ...at]);
      assert.match(again.stdout, /was not engaged/);

      const teleop = await runKeel(['robot', 'teleop', '9', '0', ...at]);
      assert.equal(teleop.code, 1);
      assert.match(teleop.stderr, /KEEL_POLICY_VIOLATION/);

      keel.child.kill('SIGINT');
      const [code] = (await once(keel.child, 'exit')) as [number | null];
      assert.equal(code, 0);
    }
    const audit = await runKeel(['audit', 'tail', '-n', '200', '--json', ...at]);
    const entries = audit.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as {
            kind: string;
            outcome: string;
            data: { reason?: string; note?: string };
          },
      )
      .filter((entry) => entry.kind.startsWith('robot.'));
    assert.deepEqual(
      entries.map((entry) => `${entry.kind} ${entry.outcome} ${entry.data.reason ?? ''}`.trim()),
      [
        'robot.estop engaged operator',
        'robot.estop.release released operator',
        'robot.estop.release not-engaged none',
        'robot.estop engaged signal',
      ],
    );
    assert.equal(entries[1]?.data.note, 'bay clear');
    const verified = await runKeel(['audit', 'verify', ...at]);
    assert.equal(verified.code, 0, verified.stderr);
  });
});
