import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { firedAt, nextFireTime, parseScheduleTrigger } from './schedule-trigger.ts';

const MINUTE_MS = 60_000;

function at(iso: string): number {
  return Date.parse(iso);
}

function rejectsAsInvalid(action: () => unknown, field?: string): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(isKeelError(error), 'a KeelError');
    assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
    if (field !== undefined) assert.equal(error.details.field, field);
    return true;
  });
}

describe('nextFireTime with an interval', () => {
  const trigger = { every: '10m' };
  const now = at('2026-03-01T12:00:00Z');

  it('fires first one interval after now, not at deploy time', () => {
    assert.equal(nextFireTime(trigger, undefined, now), now + 10 * MINUTE_MS);
  });

  it('fires one interval after the last firing', () => {
    const lastFired = now - 3 * MINUTE_MS;
    assert.equal(nextFireTime(trigger, lastFired, now), lastFired + 10 * MINUTE_MS);
  });

  it('fires now when the due time is exactly now', () => {
    assert.equal(nextFireTime(trigger, now - 10 * MINUTE_MS, now), now);
  });

  it('catches up once, at now, after missing many intervals while down', () => {
    const lastFired = now - 24 * 60 * MINUTE_MS;
    assert.equal(nextFireTime(trigger, lastFired, now), now);
    // Recording the catch-up firing moves the schedule on by one interval: no burst follows.
    assert.equal(nextFireTime(trigger, now, now + 1), now + 10 * MINUTE_MS);
  });

  it('rejects an interval shorter than one second', () => {
    rejectsAsInvalid(() => nextFireTime({ every: '500ms' }, undefined, now), 'every');
  });
});

describe('firedAt', () => {
  const every = { every: '10m' };
  const now = at('2026-03-01T12:00:00Z');

  it('records an interval firing at its slot, not at the late tick that fired it', () => {
    const last = now - 10 * MINUTE_MS;
    assert.equal(firedAt(every, last, now + 900), now);
    // So the next is due one interval after the slot, whatever the tick's lateness.
    assert.equal(
      nextFireTime(every, firedAt(every, last, now + 900), now + 900),
      now + 10 * MINUTE_MS,
    );
  });

  it('keeps an interval at its rate over many late ticks', () => {
    let last = now;
    let fired = 0;
    // Ticks every 700 ms, for an hour of a 1 s interval.
    for (let tick = now + 700; tick <= now + 3_600_000; tick += 700) {
      if (nextFireTime({ every: '1s' }, last, tick) > tick) continue;
      last = firedAt({ every: '1s' }, last, tick);
      fired += 1;
    }
    // One per tick at most, so 1 per 1.4 s at worst without slots; with them, 2 ticks in 3 fire.
    assert.ok(fired >= 3_600_000 / 1_400 + 100, `fired ${fired} times`);
  });

  it('records the latest slot not after now when slots were missed: no burst follows', () => {
    const last = now - 24 * 60 * MINUTE_MS - 5 * MINUTE_MS;
    const recorded = firedAt(every, last, now);
    assert.equal(recorded, now - 5 * MINUTE_MS);
    assert.equal(nextFireTime(every, recorded, now + 1), now + 5 * MINUTE_MS);
  });

  it('records a cron firing at now', () => {
    assert.equal(firedAt({ cron: '0 * * * *' }, now - MINUTE_MS, now + 900), now + 900);
  });
});

describe('nextFireTime with a cron expression', () => {
  const hourly = { cron: '0 * * * *' };
  const daily = { cron: '0 9 * * *' };

  it('fires first at the next matching minute after now', () => {
    const now = at('2026-03-01T12:34:56Z');
    assert.equal(nextFireTime(hourly, undefined, now), at('2026-03-01T13:00:00Z'));
  });

  it('fires at the next matching minute after the last firing', () => {
    const lastFired = at('2026-03-01T09:00:00.250Z');
    const now = at('2026-03-01T09:30:00Z');
    assert.equal(nextFireTime(hourly, lastFired, now), at('2026-03-01T10:00:00Z'));
  });

  it('catches up once, at now, after missing occurrences while down', () => {
    const lastFired = at('2026-02-25T09:00:00Z');
    const now = at('2026-03-01T12:00:00Z');
    assert.equal(nextFireTime(daily, lastFired, now), now);
    // After the catch-up firing, the schedule returns to its own times.
    assert.equal(nextFireTime(daily, now, now + 1000), at('2026-03-02T09:00:00Z'));
  });

  it('does not fire early when the last firing was recorded late', () => {
    const lastFired = at('2026-03-01T09:00:42Z');
    const now = at('2026-03-01T09:01:00Z');
    assert.equal(nextFireTime(daily, lastFired, now), at('2026-03-02T09:00:00Z'));
  });

  it('rejects an expression that never matches', () => {
    rejectsAsInvalid(() => nextFireTime({ cron: '0 0 30 2 *' }, undefined, Date.now()));
  });
});

describe('nextFireTime arguments', () => {
  it('rejects a current or last time that is not finite', () => {
    rejectsAsInvalid(() => nextFireTime({ every: '1m' }, undefined, Number.NaN), 'nowMs');
    rejectsAsInvalid(
      () => nextFireTime({ every: '1m' }, Number.POSITIVE_INFINITY, 0),
      'lastFiredMs',
    );
  });

  it('rejects a trigger with neither field', () => {
    rejectsAsInvalid(() => nextFireTime({} as unknown as { every: string }, undefined, 0));
  });
});

describe('parseScheduleTrigger', () => {
  it('accepts and freezes an interval or a cron trigger', () => {
    const every = parseScheduleTrigger({ every: '5m' });
    assert.deepEqual(every, { every: '5m' });
    assert.ok(Object.isFrozen(every));
    assert.deepEqual(parseScheduleTrigger({ cron: '@daily' }), { cron: '@daily' });
  });

  it('rejects values that are not one valid trigger', () => {
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [null, 'schedule'],
      ['5m', 'schedule'],
      [['5m'], 'schedule'],
      [{}, 'schedule'],
      [{ every: '5m', cron: '* * * * *' }, 'schedule'],
      [{ every: '5m', at: 'noon' }, 'schedule'],
      [{ every: 5 }, 'every'],
      [{ every: '100ms' }, 'every'],
      [{ every: '5 minutes' }, 'duration'],
      [{ cron: 5 }, 'cron'],
      [{ cron: '* * *' }, 'expression'],
      [{ cron: '61 * * * *' }, 'minute'],
    ];
    for (const [value, field] of cases) {
      rejectsAsInvalid(() => parseScheduleTrigger(value), field);
    }
  });
});
