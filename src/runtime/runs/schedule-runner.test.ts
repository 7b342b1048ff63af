import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKernelHarness } from '../../../test/support/kernel-harness.ts';
import { recordingLogger } from '../../../test/support/recording-logger.ts';
import { systemClock } from '../../platform/clock/clock.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { KeyValueStore } from '../../platform/storage/ports/key-value-store.ts';
import { ScheduleRunner } from './schedule-runner.ts';

/** A runner that ticks every 20 ms and notes each run it submits as `<agent> <origin>`. */
function tickingRunner(keyValues: KeyValueStore, logger: Logger, fired: string[]): ScheduleRunner {
  return new ScheduleRunner({
    keyValues,
    clock: systemClock,
    logger,
    tickMs: 20,
    submit: async (agentId, _task, _priority, origin) => {
      fired.push(`${agentId} ${origin}`);
    },
  });
}

describe('ScheduleRunner', () => {
  it('says once that a schedule can never fire, and goes on firing the others', async () => {
    await using harness = await createKernelHarness();
    const { lines, logger } = recordingLogger('warn');
    const fired: string[] = [];
    const runner = tickingRunner(harness.storage.keyValues, logger, fired);
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

  it('fires a schedule whose last firing is recorded in the future (the clock went back)', async () => {
    await using harness = await createKernelHarness();
    const fired: string[] = [];
    const { logger } = recordingLogger('warn');
    // Recorded an hour ahead: before, the schedule stayed silent for that hour.
    await harness.storage.keyValues.set(
      'schedules.agent_a.0',
      { key: JSON.stringify({ every: '1s' }), lastFiredMs: Date.now() + 3_600_000 },
      Date.now(),
    );
    const runner = tickingRunner(harness.storage.keyValues, logger, fired);
    runner.register('agent_a', [{ every: '1s', task: { prompt: 'tick' }, priority: 5 }]);
    runner.start();
    try {
      for (let waited = 0; waited < 5_000 && fired.length === 0; waited += 50) await sleep(50);
    } finally {
      runner.close();
    }
    assert.deepEqual(fired.slice(0, 1), ['agent_a schedule:0']);
    const state = (await harness.storage.keyValues.get('schedules.agent_a.0')) as {
      lastFiredMs: number;
    };
    assert.ok(state.lastFiredMs <= Date.now());
  });
});
