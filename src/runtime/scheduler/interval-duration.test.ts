import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import {
  MIN_SCHEDULE_INTERVAL_MS,
  parseDuration,
  parseScheduleInterval,
} from './interval-duration.ts';

function rejectsAsInvalid(action: () => unknown, field: string): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(isKeelError(error), 'a KeelError');
    assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
    assert.equal(error.details.field, field);
    return true;
  });
}

describe('parseDuration', () => {
  const valid: ReadonlyArray<readonly [string, number]> = [
    ['0ms', 0],
    ['1ms', 1],
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['007s', 7000],
    ['999999ms', 999_999],
    ['999999d', 999_999 * 86_400_000],
  ];
  for (const [text, expected] of valid) {
    it(`reads "${text}" as ${expected} ms`, () => {
      assert.equal(parseDuration(text), expected);
    });
  }

  const invalid = [
    '',
    '5',
    's',
    'ms',
    '1.5s',
    '-1s',
    '+1s',
    ' 5s',
    '5s ',
    '5 s',
    '1000000s',
    '5S',
    '5MS',
    '5min',
    '5sec',
    '1h30m',
    'ms5',
    '1e3ms',
    '5w',
  ];
  for (const text of invalid) {
    it(`rejects "${text}"`, () => {
      rejectsAsInvalid(() => parseDuration(text), 'duration');
    });
  }

  it('rejects a value that is not a string', () => {
    rejectsAsInvalid(() => parseDuration(5000 as unknown as string), 'duration');
  });
});

describe('parseScheduleInterval', () => {
  it('accepts an interval of one second or more', () => {
    assert.equal(MIN_SCHEDULE_INTERVAL_MS, 1000);
    assert.equal(parseScheduleInterval('1s'), 1000);
    assert.equal(parseScheduleInterval('1000ms'), 1000);
    assert.equal(parseScheduleInterval('15m'), 900_000);
  });

  it('rejects an interval shorter than one second', () => {
    for (const text of ['999ms', '0s', '0ms', '1ms']) {
      rejectsAsInvalid(() => parseScheduleInterval(text), 'every');
    }
  });

  it('rejects text that is not a duration', () => {
    rejectsAsInvalid(() => parseScheduleInterval('often'), 'duration');
  });
});
