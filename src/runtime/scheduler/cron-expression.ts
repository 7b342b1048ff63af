import { KeelError } from '../../platform/errors/keel-error.ts';

/** The five fields of a cron expression, in the order they are written. */
export type CronFieldName = 'minute' | 'hour' | 'day-of-month' | 'month' | 'day-of-week';

/**
 * A parsed five-field cron expression, evaluated in UTC. Each field is the sorted list of the
 * values it allows; day-of-week uses 0 for Sunday (a written 7 becomes 0).
 */
export interface CronExpression {
  /** The text the expression was parsed from, without surrounding whitespace. */
  readonly source: string;
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly daysOfMonth: readonly number[];
  /** 1 (January) to 12 (December). */
  readonly months: readonly number[];
  /** 0 (Sunday) to 6 (Saturday). */
  readonly daysOfWeek: readonly number[];
  /** False when the day-of-month field starts with `*` (Vixie cron's rule). */
  readonly dayOfMonthRestricted: boolean;
  /** False when the day-of-week field starts with `*` (Vixie cron's rule). */
  readonly dayOfWeekRestricted: boolean;
}

/** The longest cron expression accepted, in characters. */
export const MAX_CRON_EXPRESSION_LENGTH = 128;

/**
 * How far ahead {@link nextCronTime} looks before deciding an expression never matches. A leap
 * day can be 8 years from the last one (2096 to 2104) and a day-of-month that must also fall on
 * a given weekday up to 11, so the search covers one full 28-year calendar cycle.
 */
export const CRON_SEARCH_YEARS = 28;

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** Keeps every date the search touches inside the range `Date` can represent (±8.64e15 ms). */
const MAX_TIME_MS = 8e15;

const MONTH_NAMES = [
  'jan',
  'feb',
  'mar',
  'apr',
  'may',
  'jun',
  'jul',
  'aug',
  'sep',
  'oct',
  'nov',
  'dec',
] as const;
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

interface FieldSpecification {
  readonly name: CronFieldName;
  readonly minimum: number;
  readonly maximum: number;
  /** The largest value `*` stands for; day-of-week accepts 7 but `*` means 0-6. */
  readonly starMaximum: number;
  /** Names accepted for values, where index + `nameOffset` is the value. */
  readonly names: readonly string[];
  readonly nameOffset: number;
}

const FIELDS: readonly FieldSpecification[] = [
  { name: 'minute', minimum: 0, maximum: 59, starMaximum: 59, names: [], nameOffset: 0 },
  { name: 'hour', minimum: 0, maximum: 23, starMaximum: 23, names: [], nameOffset: 0 },
  { name: 'day-of-month', minimum: 1, maximum: 31, starMaximum: 31, names: [], nameOffset: 0 },
  { name: 'month', minimum: 1, maximum: 12, starMaximum: 12, names: MONTH_NAMES, nameOffset: 1 },
  { name: 'day-of-week', minimum: 0, maximum: 7, starMaximum: 6, names: DAY_NAMES, nameOffset: 0 },
];

/**
 * Parses a standard five-field cron expression (minute, hour, day-of-month, month,
 * day-of-week), evaluated in UTC. Accepts `*`, numbers, ranges `a-b`, steps `*\/n` and
 * `a-b/n`, lists `a,b,c`, month names JAN-DEC and day names SUN-SAT (any case), 0 or 7 for
 * Sunday, and the macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`
 * and `@hourly`. When both day fields are restricted, a day matches if either matches; a field
 * that starts with `*` (including `*\/n`) is unrestricted for this rule, as in Vixie cron.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` naming the field (`details.field`) that is wrong.
 *
 * @example
 * ```ts
 * const weekdayMornings = parseCronExpression('30 7 * * MON-FRI');
 * const quarterly = parseCronExpression('0 0 1 JAN,APR,JUL,OCT *');
 * const hourly = parseCronExpression('@hourly');
 * ```
 */
export function parseCronExpression(text: string): CronExpression {
  if (typeof text !== 'string') {
    throw invalid('expression', 'a cron expression must be a string', { received: typeof text });
  }
  if (text.length > MAX_CRON_EXPRESSION_LENGTH) {
    throw invalid(
      'expression',
      `a cron expression may have at most ${MAX_CRON_EXPRESSION_LENGTH} characters`,
      { length: text.length },
    );
  }
  const source = text.trim();
  let fieldsText = source;
  if (source.startsWith('@')) {
    const expanded = MACROS[source.toLowerCase()];
    if (expanded === undefined) {
      throw invalid('expression', `unknown cron macro "${source}"`, {
        expression: source,
        macros: Object.keys(MACROS),
      });
    }
    fieldsText = expanded;
  }
  const parts = fieldsText === '' ? [] : fieldsText.split(/\s+/);
  if (parts.length !== FIELDS.length) {
    throw invalid(
      'expression',
      `a cron expression has 5 fields (minute hour day-of-month month day-of-week), "${source}" has ${parts.length}`,
      { expression: source, fieldCount: parts.length },
    );
  }
  const values = FIELDS.map((field, index) => parseField(field, parts[index] ?? '', source));
  return Object.freeze({
    source,
    minutes: values[0] ?? [],
    hours: values[1] ?? [],
    daysOfMonth: values[2] ?? [],
    months: values[3] ?? [],
    daysOfWeek: values[4] ?? [],
    dayOfMonthRestricted: !(parts[2] ?? '').startsWith('*'),
    dayOfWeekRestricted: !(parts[4] ?? '').startsWith('*'),
  });
}

/**
 * Whether a minute (epoch milliseconds, UTC; seconds are ignored) matches the expression.
 *
 * @example
 * ```ts
 * matchesCronExpression(parseCronExpression('0 12 * * *'), Date.UTC(2026, 0, 1, 12, 0)); // true
 * ```
 */
export function matchesCronExpression(expression: CronExpression, timeMs: number): boolean {
  const date = new Date(timeMs);
  return (
    expression.minutes.includes(date.getUTCMinutes()) &&
    expression.hours.includes(date.getUTCHours()) &&
    expression.months.includes(date.getUTCMonth() + 1) &&
    dayMatches(expression, date.getUTCDate(), date.getUTCDay())
  );
}

/**
 * The first minute strictly after `afterMs` (epoch milliseconds, UTC) that matches the
 * expression, with seconds and milliseconds zero. Skips whole months, days and hours that
 * cannot match, so a search costs at most a few thousand steps.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` when `afterMs` is not a usable time, or when nothing
 * matches within {@link CRON_SEARCH_YEARS} years (`0 0 30 2 *` never matches).
 *
 * @example
 * ```ts
 * const expression = parseCronExpression('*\/15 * * * *');
 * nextCronTime(expression, Date.UTC(2026, 0, 1, 10, 7)); // Date.UTC(2026, 0, 1, 10, 15)
 * ```
 */
export function nextCronTime(expression: CronExpression, afterMs: number): number {
  if (typeof afterMs !== 'number' || !Number.isFinite(afterMs) || Math.abs(afterMs) > MAX_TIME_MS) {
    throw invalid('afterMs', 'the time to search from must be a finite epoch millisecond value', {
      afterMs: String(afterMs),
    });
  }
  const { minutes, hours, months } = expression;
  const firstMonth = months[0];
  const firstHour = hours[0];
  const firstMinute = minutes[0];
  if (firstMonth === undefined || firstHour === undefined || firstMinute === undefined) {
    throw neverMatches(expression);
  }
  let candidate = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  // 366 days a year is a slight over-estimate, which only makes the search a few days longer.
  const limit = candidate + CRON_SEARCH_YEARS * 366 * DAY_MS;
  while (candidate <= limit) {
    const date = new Date(candidate);
    const year = date.getUTCFullYear();
    const monthIndex = date.getUTCMonth();
    const day = date.getUTCDate();
    const hour = date.getUTCHours();
    const minute = date.getUTCMinutes();
    if (!months.includes(monthIndex + 1)) {
      const nextMonth = firstAfter(months, monthIndex + 1);
      candidate =
        nextMonth === undefined
          ? utcTime(year + 1, firstMonth - 1, 1)
          : utcTime(year, nextMonth - 1, 1);
      continue;
    }
    if (!dayMatches(expression, day, date.getUTCDay())) {
      candidate = utcTime(year, monthIndex, day + 1);
      continue;
    }
    if (!hours.includes(hour)) {
      const nextHour = firstAfter(hours, hour);
      candidate =
        nextHour === undefined
          ? utcTime(year, monthIndex, day + 1)
          : utcTime(year, monthIndex, day, nextHour);
      continue;
    }
    if (!minutes.includes(minute)) {
      const nextMinute = firstAfter(minutes, minute);
      candidate =
        nextMinute === undefined
          ? utcTime(year, monthIndex, day, hour + 1)
          : utcTime(year, monthIndex, day, hour, nextMinute);
      continue;
    }
    return candidate;
  }
  throw neverMatches(expression);
}

function dayMatches(expression: CronExpression, dayOfMonth: number, dayOfWeek: number): boolean {
  const byMonthDay = expression.daysOfMonth.includes(dayOfMonth);
  const byWeekDay = expression.daysOfWeek.includes(dayOfWeek);
  if (expression.dayOfMonthRestricted && expression.dayOfWeekRestricted) {
    return byMonthDay || byWeekDay;
  }
  return byMonthDay && byWeekDay;
}

/** The smallest value in a sorted list that is greater than `value`. */
function firstAfter(sorted: readonly number[], value: number): number | undefined {
  return sorted.find((candidate) => candidate > value);
}

/** Like `Date.UTC`, without its mapping of years 0-99 to 1900-1999. Overflowing fields roll over. */
function utcTime(year: number, monthIndex: number, day: number, hour = 0, minute = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, day);
  date.setUTCHours(hour, minute, 0, 0);
  return date.getTime();
}

function parseField(field: FieldSpecification, text: string, source: string): number[] {
  const allowed = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') {
      throw invalid(field.name, `the ${field.name} field "${text}" has an empty list item`, {
        expression: source,
        value: text,
      });
    }
    for (const value of parseItem(field, item, source)) {
      // Sunday may be written as 7; it is stored as 0.
      allowed.add(field.name === 'day-of-week' && value === 7 ? 0 : value);
    }
  }
  return [...allowed].sort((left, right) => left - right);
}

function parseItem(field: FieldSpecification, item: string, source: string): number[] {
  const pieces = item.split('/');
  if (pieces.length > 2) {
    throw invalid(field.name, `the ${field.name} item "${item}" has more than one step`, {
      expression: source,
      value: item,
    });
  }
  const [rangeText = '', stepText] = pieces;
  let start: number;
  let end: number;
  if (rangeText === '*') {
    start = field.minimum;
    end = field.starMaximum;
  } else if (rangeText.includes('-')) {
    const bounds = rangeText.split('-');
    if (bounds.length !== 2) {
      throw invalid(field.name, `the ${field.name} range "${rangeText}" is not of the form a-b`, {
        expression: source,
        value: item,
      });
    }
    start = parseValue(field, bounds[0] ?? '', source);
    end = parseValue(field, bounds[1] ?? '', source);
    if (start > end) {
      throw invalid(field.name, `the ${field.name} range "${rangeText}" is reversed`, {
        expression: source,
        value: item,
      });
    }
  } else {
    start = parseValue(field, rangeText, source);
    end = start;
    if (stepText !== undefined) {
      throw invalid(
        field.name,
        `the ${field.name} item "${item}" has a step without a range; write "*/n" or "a-b/n"`,
        { expression: source, value: item },
      );
    }
  }
  const step = stepText === undefined ? 1 : parseStep(field, stepText, item, source);
  const values: number[] = [];
  for (let value = start; value <= end; value += step) values.push(value);
  return values;
}

function parseStep(field: FieldSpecification, text: string, item: string, source: string): number {
  const span = field.maximum - field.minimum + 1;
  const step = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
  if (!(step >= 1 && step <= span)) {
    throw invalid(
      field.name,
      `the ${field.name} step in "${item}" must be a whole number from 1 to ${span}`,
      { expression: source, value: item },
    );
  }
  return step;
}

function parseValue(field: FieldSpecification, text: string, source: string): number {
  let value: number;
  if (/^\d{1,3}$/.test(text)) {
    value = Number(text);
  } else {
    const nameIndex = field.names.indexOf(text.toLowerCase());
    if (nameIndex === -1) {
      throw invalid(
        field.name,
        `the ${field.name} value "${text}" is not a number${field.names.length > 0 ? ' or a name' : ''}`,
        { expression: source, value: text },
      );
    }
    value = nameIndex + field.nameOffset;
  }
  if (value < field.minimum || value > field.maximum) {
    throw invalid(
      field.name,
      `the ${field.name} value ${value} is outside ${field.minimum}-${field.maximum}`,
      { expression: source, value: text },
    );
  }
  return value;
}

function invalid(
  field: CronFieldName | 'expression' | 'afterMs',
  message: string,
  details: Readonly<Record<string, unknown>>,
): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, { details: { field, ...details } });
}

function neverMatches(expression: CronExpression): KeelError {
  return invalid(
    'expression',
    `the cron expression "${expression.source}" never matches within ${CRON_SEARCH_YEARS} years`,
    { expression: expression.source },
  );
}
