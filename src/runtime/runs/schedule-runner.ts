import type { Clock } from '../../platform/clock/clock.ts';
import { isKeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { KeyValueStore } from '../../platform/storage/ports/key-value-store.ts';
import type { ManifestSchedule } from '../manifests/agent-manifest.ts';
import { firedAt, nextFireTime, type ScheduleTrigger } from '../scheduler/schedule-trigger.ts';

export interface ScheduleRunnerOptions {
  readonly keyValues: KeyValueStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly tickMs: number;
  readonly submit: (
    agentId: string,
    task: JsonObject,
    priority: number,
    origin: string,
  ) => Promise<unknown>;
}

interface Entry {
  readonly agentId: string;
  readonly index: number;
  readonly trigger: ScheduleTrigger;
  readonly task: JsonObject;
  readonly priority: number;
  /** A fingerprint of the trigger: a changed schedule starts afresh. */
  readonly key: string;
}

/**
 * Fires the interval and cron schedules of deployed agents' manifests. The last firing of each
 * is persisted before its run is submitted, so a restart neither repeats a firing nor bursts
 * through the ones it missed (one catch-up firing, see `nextFireTime`).
 *
 * @example
 * ```ts
 * runner.register(agentId, manifest.schedule ?? []);
 * runner.start();
 * ```
 */
export class ScheduleRunner {
  readonly #options: ScheduleRunnerOptions;
  readonly #entries = new Map<string, Entry[]>();
  /** Schedules (by state key) already said to be unable to fire. */
  readonly #cannotFire = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;

  constructor(options: ScheduleRunnerOptions) {
    this.#options = options;
  }

  register(agentId: string, schedules: readonly ManifestSchedule[]): void {
    if (schedules.length === 0) {
      this.#entries.delete(agentId);
      return;
    }
    this.#entries.set(
      agentId,
      schedules.map((schedule, index) => {
        const trigger: ScheduleTrigger =
          'every' in schedule ? { every: schedule.every } : { cron: schedule.cron };
        return {
          agentId,
          index,
          trigger,
          task: schedule.task as JsonObject,
          priority: schedule.priority,
          key: JSON.stringify(trigger),
        };
      }),
    );
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#options.tickMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    if (this.#ticking) return;
    this.#ticking = true;
    void this.#fireDue()
      .catch((error: unknown) =>
        this.#options.logger.error({ err: error }, 'a schedule tick failed'),
      )
      .finally(() => {
        this.#ticking = false;
      });
  }

  async #fireDue(): Promise<void> {
    const { keyValues, clock } = this.#options;
    for (const entries of this.#entries.values()) {
      for (const entry of entries) {
        const stateKey = `schedules.${entry.agentId}.${entry.index}`;
        const stored = await keyValues.get(stateKey);
        const now = clock.now();
        const state =
          typeof stored === 'object' && stored !== null && !Array.isArray(stored)
            ? (stored as { key?: unknown; lastFiredMs?: unknown })
            : undefined;
        if (
          state === undefined ||
          state.key !== entry.key ||
          typeof state.lastFiredMs !== 'number' ||
          state.lastFiredMs > now
        ) {
          // First sight of this schedule, or a last firing in the future (the clock went back,
          // or was wrong then): its clock starts now (an interval fires one period later),
          // instead of staying silent until that time comes round.
          await keyValues.set(stateKey, { key: entry.key, lastFiredMs: now }, now);
          continue;
        }
        let due: number;
        try {
          due = nextFireTime(entry.trigger, state.lastFiredMs, now);
        } catch (error) {
          // One bad schedule must not stop the others. Said once, not at every tick.
          if (!this.#cannotFire.has(stateKey)) {
            this.#cannotFire.add(stateKey);
            this.#options.logger.warn(
              { err: toKeelError(error), agentId: entry.agentId, schedule: entry.index },
              'a schedule cannot fire; fix the manifest',
            );
          }
          continue;
        }
        if (due > now) continue;
        await keyValues.set(
          stateKey,
          { key: entry.key, lastFiredMs: firedAt(entry.trigger, state.lastFiredMs, now) },
          now,
        );
        try {
          await this.#options.submit(
            entry.agentId,
            entry.task,
            entry.priority,
            `schedule:${entry.index}`,
          );
        } catch (error) {
          const stopped = isKeelError(error) && error.code === 'KEEL_AGENT_NOT_RUNNING';
          this.#options.logger[stopped ? 'info' : 'warn'](
            { err: error, agentId: entry.agentId, schedule: entry.index },
            stopped
              ? 'a schedule fired for an agent that is not running; no run was started'
              : 'a scheduled run could not be submitted',
          );
        }
      }
    }
  }
}
