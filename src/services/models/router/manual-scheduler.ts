import { KeelError } from '../../../platform/errors/keel-error.ts';
import { abortReasonOf, type Scheduler, sleepRefusal } from './scheduler.ts';

interface PendingSleep {
  readonly deadline: number;
  readonly sequence: number;
  readonly resolve: () => void;
}

/**
 * A scheduler whose time only moves when a test calls {@link ManualScheduler.advance}. Sleeps
 * that come due are resolved one at a time in deadline order (ties in the order they were
 * started), each at its own deadline, and the continuations they unblock run before time moves
 * on, so a sleep started by such a continuation is also honoured within the same advance.
 *
 * @example
 * ```ts
 * const scheduler = new ManualScheduler();
 * const done = scheduler.sleep(100, AbortSignal.any([]));
 * await scheduler.advance(100); // `done` has resolved and its continuations have run
 * ```
 */
export class ManualScheduler implements Scheduler {
  #now: number;
  #sequence = 0;
  readonly #pending = new Set<PendingSleep>();
  #advancing: Promise<void> = Promise.resolve();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** How many sleeps are waiting; an aborted sleep no longer counts (its timer is cleared). */
  get pendingSleeps(): number {
    return this.#pending.size;
  }

  sleep(milliseconds: number, signal: AbortSignal): Promise<void> {
    const refusal = sleepRefusal(milliseconds, signal);
    if (refusal !== undefined) return Promise.reject(refusal);
    if (milliseconds === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#pending.delete(sleep);
        reject(abortReasonOf(signal));
      };
      const sleep: PendingSleep = {
        deadline: this.#now + milliseconds,
        sequence: this.#sequence++,
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.#pending.add(sleep);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Moves time forward by `milliseconds`, resolving due sleeps in deadline order. Concurrent
   * calls run one after another.
   */
  advance(milliseconds: number): Promise<void> {
    if (!(milliseconds >= 0)) {
      return Promise.reject(
        new KeelError('KEEL_INVALID_ARGUMENT', 'time only moves forward', {
          details: { milliseconds },
        }),
      );
    }
    const run = this.#advancing.then(() => this.#doAdvance(milliseconds));
    this.#advancing = run;
    return run;
  }

  async #doAdvance(milliseconds: number): Promise<void> {
    const target = this.#now + milliseconds;
    for (let due = this.#earliestDue(target); due !== undefined; due = this.#earliestDue(target)) {
      this.#pending.delete(due);
      this.#now = Math.max(this.#now, due.deadline);
      due.resolve();
      await settleContinuations();
    }
    this.#now = target;
    await settleContinuations();
  }

  #earliestDue(target: number): PendingSleep | undefined {
    let earliest: PendingSleep | undefined;
    for (const sleep of this.#pending) {
      if (sleep.deadline > target) continue;
      if (
        earliest === undefined ||
        sleep.deadline < earliest.deadline ||
        (sleep.deadline === earliest.deadline && sleep.sequence < earliest.sequence)
      ) {
        earliest = sleep;
      }
    }
    return earliest;
  }
}

// setImmediate runs after every queued microtask, so chains of awaits behind a resolved sleep
// have all run by then.
function settleContinuations(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
