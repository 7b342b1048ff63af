import { KeelError } from '../../platform/errors/keel-error.ts';

/** The shortest interval a schedule may fire at, in milliseconds. */
export const MIN_SCHEDULE_INTERVAL_MS = 1000;

const DURATION_PATTERN = /^(\d{1,6})(ms|s|m|h|d)$/;

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration written as a whole number of 1 to 6 digits followed by a unit: `ms`, `s`,
 * `m` (minutes), `h` or `d`. Nothing else is accepted: no spaces, no fractions, no combined
 * units.
 *
 * @returns the duration in milliseconds.
 * @throws KeelError `KEEL_INVALID_ARGUMENT` when the text is not of that form.
 *
 * @example
 * ```ts
 * parseDuration('90s'); // 90_000
 * parseDuration('250ms'); // 250
 * parseDuration('1h'); // 3_600_000
 * ```
 */
export function parseDuration(text: string): number {
  const match = typeof text === 'string' ? DURATION_PATTERN.exec(text) : null;
  const amount = match?.[1];
  const unit = match?.[2];
  const unitMs = unit === undefined ? undefined : UNIT_MS[unit];
  if (amount === undefined || unitMs === undefined) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `"${String(text).slice(0, 32)}" is not a duration; write a whole number and a unit, as in 30s, 5m, 1h or 250ms`,
      { details: { field: 'duration', value: String(text).slice(0, 32) } },
    );
  }
  return Number(amount) * unitMs;
}

/**
 * Parses the interval of an `every` schedule: a duration as {@link parseDuration} reads it, of
 * at least {@link MIN_SCHEDULE_INTERVAL_MS}.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` when the text is not a duration or is too short.
 *
 * @example
 * ```ts
 * parseScheduleInterval('5m'); // 300_000
 * parseScheduleInterval('500ms'); // throws: shorter than 1 second
 * ```
 */
export function parseScheduleInterval(text: string): number {
  const intervalMs = parseDuration(text);
  if (intervalMs < MIN_SCHEDULE_INTERVAL_MS) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `a schedule interval must be at least ${MIN_SCHEDULE_INTERVAL_MS} ms; "${text}" is ${intervalMs} ms`,
      {
        details: {
          field: 'every',
          value: text,
          intervalMs,
          minimumMs: MIN_SCHEDULE_INTERVAL_MS,
        },
      },
    );
  }
  return intervalMs;
}
