import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { openSqliteStorage } from '../../../platform/storage/sqlite/sqlite-storage.ts';
import { FleetTaskBoard } from './fleet-task-board.ts';

describe('FleetTaskBoard', () => {
  it('gives a task to exactly one of many robots claiming it at once, and keeps it across a reopen', async () => {
    await using directory = await temporaryDirectory('keel-fleet-');
    const path = join(directory.path, 'keel.db');
    const auditKey = randomBytes(32);
    const storage = await openSqliteStorage({ path, auditKey });
    let taskId: string;
    try {
      const board = new FleetTaskBoard(storage.keyValues);
      const task = await board.post(
        'rover-1',
        { title: 'Inspect bay 3', description: 'north wall' },
        1000,
      );
      taskId = task.id;
      const claims = await Promise.allSettled(
        Array.from({ length: 8 }, (_, index) =>
          board.claim(task.id, `rover-${index + 2}`, 2000 + index),
        ),
      );
      const won = claims.filter((claim) => claim.status === 'fulfilled');
      const lost = claims.filter((claim) => claim.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 7);
      for (const claim of lost)
        assert.equal((claim.reason as { code: string }).code, 'KEEL_CONFLICT');
      await assert.rejects(board.claim('task_missing', 'rover-2', 3000), {
        code: 'KEEL_NOT_FOUND',
      });
    } finally {
      await storage.close();
    }
    const reopened = await openSqliteStorage({ path, auditKey });
    try {
      const tasks = await new FleetTaskBoard(reopened.keyValues).list();
      assert.equal(tasks.length, 1);
      assert.equal(tasks[0]?.id, taskId);
      assert.match(tasks[0]?.claimedBy ?? '', /^rover-\d$/);
    } finally {
      await reopened.close();
    }
  });
});
