import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKernelHarness } from '../../../test/support/kernel-harness.ts';
import { recordingLogger } from '../../../test/support/recording-logger.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import { ScheduleRunner } from './schedule-runner.ts';

describe('ScheduleRunner', () => {
  it('says once that a schedule can never fire, and goes on firing the others', async () => {
    await using harness = await createKernelHarness();
    const { lines, logger } = recordingLogger('warn');
    const fired: string[] = [];
    const runner = new ScheduleRunner({
      keyValues: harness.storage.keyValues,
      clock: systemClock,
      logger,
      tickMs: 20,
      submit: async (agentId, _task, _priority, origin) => {
        fired.push(`${agentId} ${origin}`);
      },
    });
    runner.register('agent_a', [
      // The 30th of February: a valid expression that no day matches.
      { cron: '0 0 30 2 *', task: { prompt: 'never' }, priority: 5 },
      { every: '1s', task: { prompt: 'tick' }, priority: 5 },
    ]);
    runner.start();
    try {
      for (let waited = 0; waited < 10_000 && fired.length === 0; waited += 50) await sleep(50);
      // Many ticks have passed by now (one every 20 ms).
      await sleep(200);
    } finally {
      runner.close();
    }
    assert.deepEqual(fired.slice(0, 1), ['agent_a schedule:1']);
    assert.ok(!fired.includes('agent_a schedule:0'));
    const warnings = lines
      .map((line) => JSON.parse(line) as { msg: string; schedule?: number })
      .filter((entry) => entry.msg === 'a schedule cannot fire; fix the manifest');
    assert.equal(warnings.length, 1, lines.join(''));
    assert.equal(warnings[0]?.schedule, 0);
  });
});
