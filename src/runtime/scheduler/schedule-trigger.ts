import { KeelError } from '../../platform/errors/keel-error.ts';
import { nextCronTime, parseCronExpression } from './cron-expression.ts';
import { parseScheduleInterval } from './interval-duration.ts';

/**
 * When a scheduled agent runs: at a fixed interval (`{ every: '5m' }`, see
 * `parseScheduleInterval`) or on a five-field UTC cron expression (`{ cron: '0 9 * * MON-FRI' }`,
 * see `parseCronExpression`).
 */
export type ScheduleTrigger = { readonly every: string } | { readonly cron: string };

/**
 * Checks that a value is a valid trigger, with exactly one of `every` or `cron`, and returns it
 * as a frozen copy. Use it when a schedule is declared, so a bad one fails at deploy time and
 * not at its first firing.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` naming the field that is wrong.
 *
 * @example
 * ```ts
 * const trigger = parseScheduleTrigger(manifest.schedule); // { cron: '0 9 * * MON-FRI' }
 * ```
 */
export function parseScheduleTrigger(value: unknown): ScheduleTrigger {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidTrigger('a schedule trigger must be an object with "every" or "cron"', {
      received: Array.isArray(value) ? 'array' : typeof value,
    });
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  const extra = keys.filter((key) => key !== 'every' && key !== 'cron');
  if (extra.length > 0 || keys.length !== 1) {
    throw invalidTrigger('a schedule trigger has exactly one field, "every" or "cron"', {
      fields: keys.slice(0, 8),
    });
  }
  if ('every' in record) {
    if (typeof record.every !== 'string') {
      throw invalidTrigger('"every" must be a duration string such as "5m"', { field: 'every' });
    }
    parseScheduleInterval(record.every);
    return Object.freeze({ every: record.every });
  }
  if (typeof record.cron !== 'string') {
    throw invalidTrigger('"cron" must be a cron expression string such as "0 9 * * *"', {
      field: 'cron',
    });
  }
  parseCronExpression(record.cron);
  return Object.freeze({ cron: record.cron });
}

/**
 * When a trigger should fire next (epoch milliseconds), given when it last fired (`undefined`
 * if never) and the current time.
 *
 * - `every`: the first firing is one interval after `nowMs` (nothing fires at deploy time);
 *   later ones are one interval after the last firing.
 * - `cron`: the first matching minute after `nowMs`, or after the last firing if there was one.
 *
 * Catch-up policy: when the due time has already passed (the node was down, or busy), the
 * result is `nowMs`, so the trigger fires once, immediately. Every occurrence missed in the
 * meantime is folded into that one firing; there is never a burst. Once that firing is recorded
 * as the last one, an `every` schedule continues one interval after it (its phase shifts to the
 * catch-up time) and a `cron` schedule returns to its next matching minute.
 *
 * @throws KeelError `KEEL_INVALID_ARGUMENT` for an invalid trigger or time, or a cron expression
 * that never matches.
 *
 * @example
 * ```ts
 * const due = nextFireTime({ every: '10m' }, schedule.lastFiredMs, Date.now());
 * const wait = Math.max(0, due - Date.now());
 * ```
 */
export function nextFireTime(
  trigger: ScheduleTrigger,
  lastFiredMs: number | undefined,
  nowMs: number,
): number {
  requireTime('nowMs', nowMs);
  if (lastFiredMs !== undefined) requireTime('lastFiredMs', lastFiredMs);
  let dueMs: number;
  if ('every' in trigger) {
    const intervalMs = parseScheduleInterval(trigger.every);
    dueMs = (lastFiredMs ?? nowMs) + intervalMs;
  } else if ('cron' in trigger) {
    dueMs = nextCronTime(parseCronExpression(trigger.cron), lastFiredMs ?? nowMs);
  } else {
    throw invalidTrigger('a schedule trigger needs "every" or "cron"', {});
  }
  return Math.max(dueMs, nowMs);
}

/**
 * The time to record for a firing at `nowMs` (a tick, a little after it was due) after the last
 * at `lastFiredMs`: for an interval, the slot it was due in — the latest slot not after now,
 * when slots were missed — so that the lateness of ticks does not push every later firing
 * back (it fires at its rate, not at its rate plus a tick); for a cron expression, now (its
 * next time is found from there).
 *
 * @example
 * ```ts
 * firedAt({ every: '1m' }, 0, 60_900); // 60_000
 * ```
 */
export function firedAt(trigger: ScheduleTrigger, lastFiredMs: number, nowMs: number): number {
  requireTime('nowMs', nowMs);
  requireTime('lastFiredMs', lastFiredMs);
  if (!('every' in trigger)) return nowMs;
  const intervalMs = parseScheduleInterval(trigger.every);
  const slot = lastFiredMs + intervalMs;
  if (slot > nowMs) return nowMs;
  return slot + Math.floor((nowMs - slot) / intervalMs) * intervalMs;
}

function requireTime(field: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `${field} must be a finite epoch millisecond time`,
      {
        details: { field, value: String(value) },
      },
    );
  }
}

function invalidTrigger(message: string, details: Readonly<Record<string, unknown>>): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, {
    details: { field: 'schedule', ...details },
  });
}
