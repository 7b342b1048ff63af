const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;
const DECIMAL_NUMBER = /^[0-9]+(?:\.[0-9]+)?$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_NAME = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY_NAME = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH_NAME = `(?<month>${MONTHS.join('|')})`;
const TIME = '(?<hour>[0-9]{2}):(?<minute>[0-9]{2}):(?<second>[0-9]{2})';
const HTTP_DATES = [
  // `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
  new RegExp(`^${DAY_NAME}, (?<day>[0-9]{2}) ${MONTH_NAME} (?<year>[0-9]{4}) ${TIME} GMT$`),
  // `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete RFC 850 form).
  new RegExp(`^${LONG_DAY_NAME}, (?<day>[0-9]{2})-${MONTH_NAME}-(?<year>[0-9]{2}) ${TIME} GMT$`),
  // `Sun Nov  6 08:49:37 1994` (obsolete asctime form, always UTC).
  new RegExp(`^${DAY_NAME} ${MONTH_NAME} (?<day>[0-9 ][0-9]) ${TIME} (?<year>[0-9]{4})$`),
];

/**
 * Reads how long a provider asks us to wait before retrying, in milliseconds. Honours
 * `retry-after-ms` (OpenAI) first, then `retry-after` as delta-seconds (a non-negative
 * integer or decimal) or as an HTTP-date (the date minus `nowMs`, never below 0). A value it
 * cannot read counts as absent; the result is capped at 24 hours. Fractions of a millisecond
 * round up, so the wait is never shorter than asked.
 *
 * @example
 * ```ts
 * const waitMs = parseRetryAfter(response.headers, Date.now()) ?? backoffMs;
 * ```
 */
export function parseRetryAfter(headers: Headers, nowMs: number): number | undefined {
  const milliseconds = parseDecimal(headers.get('retry-after-ms'));
  if (milliseconds !== undefined) return capped(milliseconds);
  const retryAfter = headers.get('retry-after');
  if (retryAfter === null) return undefined;
  const seconds = parseDecimal(retryAfter);
  if (seconds !== undefined) return capped(seconds * 1000);
  const dateMs = parseHttpDate(retryAfter.trim(), nowMs);
  if (dateMs === undefined) return undefined;
  return capped(Math.max(0, dateMs - nowMs));
}

function parseDecimal(value: string | null): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  return DECIMAL_NUMBER.test(trimmed) ? Number(trimmed) : undefined;
}

function capped(milliseconds: number): number {
  return Math.min(Math.ceil(milliseconds), MAX_RETRY_AFTER_MS);
}

function parseHttpDate(value: string, nowMs: number): number | undefined {
  for (const pattern of HTTP_DATES) {
    const groups = pattern.exec(value)?.groups;
    if (groups === undefined) continue;
    const day = Number(groups.day?.trim());
    const month = MONTHS.indexOf(groups.month ?? '');
    const hour = Number(groups.hour);
    const minute = Number(groups.minute);
    const second = Number(groups.second);
    let year = Number(groups.year);
    if (groups.year?.length === 2) {
      // RFC 9110: a two-digit year more than 50 years ahead is in the previous century.
      year += 2000;
      if (year > new Date(nowMs).getUTCFullYear() + 50) year -= 100;
    }
    if (hour > 23 || minute > 59 || second > 60) return undefined;
    const time = Date.UTC(year, month, day, hour, minute, second);
    // Date.UTC rolls 31 Feb over into March; a date that does not exist is garbage.
    const rolledOver = new Date(Date.UTC(year, month, day)).getUTCDate() !== day;
    return Number.isNaN(time) || rolledOver ? undefined : time;
  }
  return undefined;
}
