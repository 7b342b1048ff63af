import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import {
  type CronFieldName,
  matchesCronExpression,
  nextCronTime,
  parseCronExpression,
} from './cron-expression.ts';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

function at(iso: string): number {
  return Date.parse(iso);
}

function rejectsWith(action: () => unknown, field: string, pattern?: RegExp): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(isKeelError(error), 'a KeelError');
    assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
    assert.equal(error.details.field, field);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  });
}

describe('parseCronExpression', () => {
  it('expands stars, steps, ranges and lists into sorted values', () => {
    const expression = parseCronExpression('*/20 9-17/4 1,15 * *');
    assert.deepEqual(expression.minutes, [0, 20, 40]);
    assert.deepEqual(expression.hours, [9, 13, 17]);
    assert.deepEqual(expression.daysOfMonth, [1, 15]);
    assert.deepEqual(expression.months, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual(expression.daysOfWeek, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(expression.dayOfMonthRestricted, true);
    assert.equal(expression.dayOfWeekRestricted, false);
  });

  it('reads month and day names in any case', () => {
    const expression = parseCronExpression('0 0 * jan,Jul-SEP mon-Fri');
    assert.deepEqual(expression.months, [1, 7, 8, 9]);
    assert.deepEqual(expression.daysOfWeek, [1, 2, 3, 4, 5]);
  });

  it('stores a day-of-week of 7 as Sunday (0)', () => {
    assert.deepEqual(parseCronExpression('0 0 * * 7').daysOfWeek, [0]);
    assert.deepEqual(parseCronExpression('0 0 * * 0,7').daysOfWeek, [0]);
    assert.deepEqual(parseCronExpression('0 0 * * 5-7').daysOfWeek, [0, 5, 6]);
  });

  it('expands macros to their five-field equivalents', () => {
    const equivalents: ReadonlyArray<readonly [string, string]> = [
      ['@yearly', '0 0 1 1 *'],
      ['@annually', '0 0 1 1 *'],
      ['@monthly', '0 0 1 * *'],
      ['@weekly', '0 0 * * 0'],
      ['@daily', '0 0 * * *'],
      ['@midnight', '0 0 * * *'],
      ['@hourly', '0 * * * *'],
      ['@HOURLY', '0 * * * *'],
    ];
    for (const [macro, fields] of equivalents) {
      const { source: _macroSource, ...expanded } = parseCronExpression(macro);
      const { source: _fieldsSource, ...expected } = parseCronExpression(fields);
      assert.deepEqual(expanded, expected, macro);
    }
  });

  it('treats a day field starting with * as unrestricted, as Vixie cron does', () => {
    assert.equal(parseCronExpression('0 0 */2 * 1').dayOfMonthRestricted, false);
    assert.equal(parseCronExpression('0 0 1-31 * *').dayOfMonthRestricted, true);
  });

  it('accepts surrounding and repeated whitespace', () => {
    assert.deepEqual(parseCronExpression('  5   4 *\t* *  ').minutes, [5]);
  });

  const rejections: ReadonlyArray<readonly [string, CronFieldName | 'expression']> = [
    ['', 'expression'],
    ['   ', 'expression'],
    ['* * * *', 'expression'],
    ['* * * * * *', 'expression'],
    ['0 0 1 1 * 2026', 'expression'],
    ['@reboot', 'expression'],
    ['@every 5m', 'expression'],
    [`${'1,'.repeat(64)}1 * * * *`, 'expression'],
    ['60 * * * *', 'minute'],
    ['-1 * * * *', 'minute'],
    ['1.5 * * * *', 'minute'],
    ['1,,2 * * * *', 'minute'],
    [',1 * * * *', 'minute'],
    ['1, * * * *', 'minute'],
    ['*/0 * * * *', 'minute'],
    ['*/61 * * * *', 'minute'],
    ['*/ * * * *', 'minute'],
    ['5-1 * * * *', 'minute'],
    ['1-2-3 * * * *', 'minute'],
    ['*/5/2 * * * *', 'minute'],
    ['5/15 * * * *', 'minute'],
    ['** * * * *', 'minute'],
    ['a * * * *', 'minute'],
    ['* 24 * * *', 'hour'],
    ['* 0-24 * * *', 'hour'],
    ['* * 0 * *', 'day-of-month'],
    ['* * 32 * *', 'day-of-month'],
    ['* * MON * *', 'day-of-month'],
    ['* * * 0 *', 'month'],
    ['* * * 13 *', 'month'],
    ['* * * JANUARY *', 'month'],
    ['* * * MON *', 'month'],
    ['* * * DEC-JAN *', 'month'],
    ['* * * * 8', 'day-of-week'],
    ['* * * * JAN', 'day-of-week'],
    ['* * * * FRI-MON', 'day-of-week'],
    ['* * * * MON/2', 'day-of-week'],
    ['* * * * 1-', 'day-of-week'],
  ];
  for (const [text, field] of rejections) {
    it(`rejects "${text.length > 40 ? `${text.slice(0, 40)}…` : text}" naming the ${field} field`, () => {
      rejectsWith(() => parseCronExpression(text), field);
    });
  }

  it('rejects an expression longer than 128 characters', () => {
    rejectsWith(() => parseCronExpression(`0 0 * * *${' '.repeat(120)}`), 'expression', /128/);
  });

  it('rejects a value that is not a string', () => {
    rejectsWith(() => parseCronExpression(5 as unknown as string), 'expression');
  });
});

describe('nextCronTime', () => {
  const table: ReadonlyArray<readonly [string, string, string]> = [
    // [expression, after, expected next]
    ['*/15 * * * *', '2026-01-01T10:07:00Z', '2026-01-01T10:15:00Z'],
    ['*/15 * * * *', '2026-01-01T10:15:00Z', '2026-01-01T10:30:00Z'],
    ['*/15 * * * *', '2026-01-01T10:14:59.999Z', '2026-01-01T10:15:00Z'],
    ['*/15 * * * *', '2026-01-01T23:50:00Z', '2026-01-02T00:00:00Z'],
    ['* * * * *', '2026-01-01T10:07:30Z', '2026-01-01T10:08:00Z'],
    ['0 * * * *', '2026-01-01T10:00:30Z', '2026-01-01T11:00:00Z'],
    ['@hourly', '2026-01-01T23:30:00Z', '2026-01-02T00:00:00Z'],
    ['@daily', '2026-12-31T12:00:00Z', '2027-01-01T00:00:00Z'],
    ['@weekly', '2026-01-01T00:00:00Z', '2026-01-04T00:00:00Z'],
    ['@monthly', '2026-01-31T00:00:00Z', '2026-02-01T00:00:00Z'],
    ['@yearly', '2026-03-01T00:00:00Z', '2027-01-01T00:00:00Z'],
    ['0 0 1 1 *', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z'],
    ['59 23 31 12 *', '2026-12-31T23:58:59Z', '2026-12-31T23:59:00Z'],
    // Month rollover: April has no 31st.
    ['0 0 31 * *', '2026-04-01T00:00:00Z', '2026-05-31T00:00:00Z'],
    ['0 0 31 * *', '2026-01-31T00:00:00Z', '2026-03-31T00:00:00Z'],
    ['30 7 * * MON-FRI', '2026-01-02T08:00:00Z', '2026-01-05T07:30:00Z'],
    ['10-40/10 9-17/4 * * *', '2026-01-01T00:00:00Z', '2026-01-01T09:10:00Z'],
    ['10-40/10 9-17/4 * * *', '2026-01-01T09:40:00Z', '2026-01-01T13:10:00Z'],
    ['5,35 * * * *', '2026-01-01T10:05:00Z', '2026-01-01T10:35:00Z'],
    ['0 0 1 jan,Jul *', '2026-02-01T00:00:00Z', '2026-07-01T00:00:00Z'],
    // Both day fields restricted: either matches (Friday the 2nd, then Tuesday the 13th).
    ['0 12 13 * FRI', '2026-01-01T00:00:00Z', '2026-01-02T12:00:00Z'],
    ['0 12 13 * FRI', '2026-01-10T00:00:00Z', '2026-01-13T12:00:00Z'],
    // Only day-of-month restricted: the weekday does not matter.
    ['0 0 13 * *', '2026-01-01T00:00:00Z', '2026-01-13T00:00:00Z'],
    // A day field starting with * is unrestricted, so both must match: odd days that are Mondays.
    ['0 0 */2 * MON', '2026-01-01T00:00:00Z', '2026-01-05T00:00:00Z'],
    ['0 0 */2 * MON', '2026-01-05T00:00:00Z', '2026-01-19T00:00:00Z'],
    // Sunday as 0, 7 and SUN (2026-01-01 is a Thursday).
    ['0 0 * * 0', '2026-01-01T00:00:00Z', '2026-01-04T00:00:00Z'],
    ['0 0 * * 7', '2026-01-01T00:00:00Z', '2026-01-04T00:00:00Z'],
    ['0 0 * * sun', '2026-01-01T00:00:00Z', '2026-01-04T00:00:00Z'],
    ['0 0 * * 6-7', '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z'],
    // Leap days, including across 2100, which is not a leap year.
    ['0 0 29 2 *', '2026-01-01T00:00:00Z', '2028-02-29T00:00:00Z'],
    ['0 0 29 2 *', '2096-03-01T00:00:00Z', '2104-02-29T00:00:00Z'],
  ];
  for (const [text, after, expected] of table) {
    it(`gives ${expected} for "${text}" after ${after}`, () => {
      const next = nextCronTime(parseCronExpression(text), at(after));
      assert.equal(new Date(next).toISOString(), new Date(at(expected)).toISOString());
    });
  }

  it('rejects an expression that never matches', () => {
    for (const text of ['0 0 30 2 *', '0 0 31 4,6,9,11 *', '0 0 31 FEB *']) {
      rejectsWith(
        () => nextCronTime(parseCronExpression(text), at('2026-01-01T00:00:00Z')),
        'expression',
        /never matches/,
      );
    }
  });

  it('rejects a time to search from that is not finite or is out of range', () => {
    const expression = parseCronExpression('* * * * *');
    for (const afterMs of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15]) {
      rejectsWith(() => nextCronTime(expression, afterMs), 'afterMs');
    }
  });

  it('handles times before 1970 and in the years 0-99', () => {
    const expression = parseCronExpression('0 0 1 1 *');
    assert.equal(nextCronTime(expression, at('1969-06-01T00:00:00Z')), at('1970-01-01T00:00:00Z'));
    const early = new Date(0);
    early.setUTCFullYear(50, 5, 1);
    const expected = new Date(0);
    expected.setUTCFullYear(51, 0, 1);
    assert.equal(nextCronTime(expression, early.getTime()), expected.getTime());
  });
});

/** A field as the property test writes it, with the values it should allow, computed here. */
interface GeneratedField {
  readonly text: string;
  readonly values: ReadonlySet<number>;
}

function fieldArbitrary(minimum: number, maximum: number, sundayAlias = false) {
  const starMaximum = sundayAlias ? 6 : maximum;
  const normalise = (value: number) => (sundayAlias && value === 7 ? 0 : value);
  const stepped = (start: number, end: number, step: number) => {
    const values = new Set<number>();
    for (let value = start; value <= end; value += step) values.add(normalise(value));
    return values;
  };
  const value = fc.integer({ min: minimum, max: maximum });
  return fc.oneof(
    fc.constant<GeneratedField>({ text: '*', values: stepped(minimum, starMaximum, 1) }),
    fc.integer({ min: 1, max: Math.min(12, maximum - minimum + 1) }).map(
      (step): GeneratedField => ({
        text: `*/${step}`,
        values: stepped(minimum, starMaximum, step),
      }),
    ),
    value.map(
      (single): GeneratedField => ({ text: String(single), values: stepped(single, single, 1) }),
    ),
    fc.tuple(value, value, fc.integer({ min: 1, max: 5 })).map(([first, second, step]) => {
      const start = Math.min(first, second);
      const end = Math.max(first, second);
      return step === 1
        ? { text: `${start}-${end}`, values: stepped(start, end, 1) }
        : { text: `${start}-${end}/${step}`, values: stepped(start, end, step) };
    }),
    fc.uniqueArray(value, { minLength: 1, maxLength: 4 }).map(
      (list): GeneratedField => ({
        text: list.join(','),
        values: new Set(list.map(normalise)),
      }),
    ),
  );
}

interface GeneratedExpression {
  readonly minute: GeneratedField;
  readonly hour: GeneratedField;
  readonly dayOfMonth: GeneratedField;
  readonly month: GeneratedField;
  readonly dayOfWeek: GeneratedField;
}

/** An independent matcher for a whole UTC day, from the generated fields alone. */
function referenceDayMatches(expression: GeneratedExpression, dayMs: number): boolean {
  const date = new Date(dayMs);
  if (!expression.month.values.has(date.getUTCMonth() + 1)) return false;
  const byMonthDay = expression.dayOfMonth.values.has(date.getUTCDate());
  const byWeekDay = expression.dayOfWeek.values.has(date.getUTCDay());
  const bothRestricted =
    !expression.dayOfMonth.text.startsWith('*') && !expression.dayOfWeek.text.startsWith('*');
  return bothRestricted ? byMonthDay || byWeekDay : byMonthDay && byWeekDay;
}

function referenceMatches(expression: GeneratedExpression, timeMs: number): boolean {
  const date = new Date(timeMs);
  return (
    expression.minute.values.has(date.getUTCMinutes()) &&
    expression.hour.values.has(date.getUTCHours()) &&
    referenceDayMatches(expression, timeMs)
  );
}

/**
 * Brute force: minute by minute to the end of the first day, then day by day, since on a later
 * matching day the first match is at its smallest hour and minute.
 */
function referenceNext(expression: GeneratedExpression, afterMs: number): number | undefined {
  let time = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  const dayEnd = Math.floor(time / DAY_MS) * DAY_MS + DAY_MS;
  for (; time < dayEnd; time += MINUTE_MS) {
    if (referenceMatches(expression, time)) return time;
  }
  const firstHour = Math.min(...expression.hour.values);
  const firstMinute = Math.min(...expression.minute.values);
  for (let day = dayEnd; day < dayEnd + 40 * 366 * DAY_MS; day += DAY_MS) {
    if (referenceDayMatches(expression, day)) {
      return day + firstHour * 3_600_000 + firstMinute * MINUTE_MS;
    }
  }
  return undefined;
}

describe('nextCronTime against a brute-force reference', () => {
  const expressionArbitrary = fc.record({
    minute: fieldArbitrary(0, 59),
    hour: fieldArbitrary(0, 23),
    dayOfMonth: fieldArbitrary(1, 31),
    month: fieldArbitrary(1, 12),
    dayOfWeek: fieldArbitrary(0, 7, true),
  });
  const afterArbitrary = fc
    .tuple(
      fc.integer({ min: at('2000-01-01T00:00:00Z'), max: at('2110-01-01T00:00:00Z') }),
      fc.boolean(),
    )
    .map(([time, onMinute]) => (onMinute ? Math.floor(time / MINUTE_MS) * MINUTE_MS : time));

  it('finds the same next minute for random expressions and times', () => {
    fc.assert(
      fc.property(expressionArbitrary, afterArbitrary, (generated, afterMs) => {
        const text = [
          generated.minute.text,
          generated.hour.text,
          generated.dayOfMonth.text,
          generated.month.text,
          generated.dayOfWeek.text,
        ].join(' ');
        const expression = parseCronExpression(text);
        const expected = referenceNext(generated, afterMs);
        if (expected === undefined) {
          rejectsWith(() => nextCronTime(expression, afterMs), 'expression', /never matches/);
          return;
        }
        const next = nextCronTime(expression, afterMs);
        assert.equal(next, expected, `${text} after ${new Date(afterMs).toISOString()}`);
        assert.ok(matchesCronExpression(expression, next));
      }),
      { numRuns: 400 },
    );
  });

  it('agrees minute by minute over a two-day horizon for frequent expressions', () => {
    const frequent = fc.record({
      minute: fieldArbitrary(0, 59),
      hour: fieldArbitrary(0, 23),
      dayOfMonth: fc.constant<GeneratedField>({
        text: '*',
        values: new Set(Array.from({ length: 31 }, (_, index) => index + 1)),
      }),
      month: fc.constant<GeneratedField>({
        text: '*',
        values: new Set(Array.from({ length: 12 }, (_, index) => index + 1)),
      }),
      dayOfWeek: fieldArbitrary(0, 7, true),
    });
    fc.assert(
      fc.property(frequent, afterArbitrary, (generated, afterMs) => {
        const expression = parseCronExpression(
          [
            generated.minute.text,
            generated.hour.text,
            generated.dayOfMonth.text,
            generated.month.text,
            generated.dayOfWeek.text,
          ].join(' '),
        );
        const next = nextCronTime(expression, afterMs);
        let time = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
        for (; time < afterMs + 2 * DAY_MS; time += MINUTE_MS) {
          if (referenceMatches(generated, time)) break;
        }
        if (time < afterMs + 2 * DAY_MS) assert.equal(next, time);
        else assert.ok(next >= time);
      }),
      { numRuns: 150 },
    );
  });
});
