import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { acquireLockFile, inspectLockFile } from './lock-file.ts';

const run = promisify(execFile);
const CONTENDER = fileURLToPath(
  new URL('../../../test/fixtures/lock-contender.ts', import.meta.url),
);

/** A lock file left by a process that has exited (as after kill -9). */
async function staleLock(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  await writeFile(
    path,
    `${JSON.stringify({ pid: child.pid, startTicks: '1', hostname: hostname(), token: 'dead', acquiredAt: 1 })}\n`,
  );
}

describe('lock files', () => {
  it('are exclusive while held and free after release', async () => {
    await using directory = await temporaryDirectory();
    const path = join(directory.path, 'keel.lock');
    const lock = await acquireLockFile(path, 'a test');
    assert.equal((await inspectLockFile(path))?.pid, process.pid);
    const error = await rejectsWithCode(acquireLockFile(path, 'a test'), 'KEEL_DATA_DIR_LOCKED');
    assert.match(error.message, new RegExp(`pid ${process.pid}`));
    await lock.release();
    assert.equal(await inspectLockFile(path), undefined);
    await (await acquireLockFile(path, 'a test')).release();
    assert.deepEqual(await readdir(directory.path), [], 'no leftovers');
  });

  it('take over a lock whose holder is gone', async () => {
    await using directory = await temporaryDirectory();
    const path = join(directory.path, 'keel.lock');
    await staleLock(path);
    assert.equal(await inspectLockFile(path), undefined);
    const lock = await acquireLockFile(path, 'a test');
    assert.equal((await inspectLockFile(path))?.pid, process.pid);
    await lock.release();
  });

  it('let exactly one of many racing processes take over a stale lock at a time', async () => {
    await using directory = await temporaryDirectory();
    const path = join(directory.path, 'keel.lock');
    for (let trial = 0; trial < 8; trial += 1) {
      await staleLock(path);
      // Every contender starts at the same instant, once all have loaded.
      const startAt = String(Date.now() + 1_500);
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, () =>
          run(process.execPath, [CONTENDER, path, '150', startAt]).then(({ stdout }) =>
            stdout.trim(),
          ),
        ),
      );
      const held = outcomes
        .filter((line) => line.startsWith('held'))
        .map((line) => line.split(' ').slice(1).map(Number) as [number, number])
        .sort((left, right) => left[0] - right[0]);
      assert.ok(held.length >= 1, `someone took the stale lock: ${outcomes.join(' | ')}`);
      for (let index = 1; index < held.length; index += 1) {
        const previous = held[index - 1] as [number, number];
        const current = held[index] as [number, number];
        assert.ok(current[0] >= previous[1], `two holders at once: ${JSON.stringify(held)}`);
      }
      assert.ok(
        outcomes.every(
          (line) => line.startsWith('held') || line === 'refused KEEL_DATA_DIR_LOCKED',
        ),
        outcomes.join(' | '),
      );
    }
  });
});
