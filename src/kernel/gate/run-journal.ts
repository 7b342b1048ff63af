import type { JournalEntry, RunStore } from '../../platform/storage/ports/run-store.ts';

const MAX_TRACKED_RUNS = 10_000;

/**
 * The durable run journal as the gate uses it: before a call runs, is `(runId, seq)` already
 * recorded? Remembers each run's highest recorded seq so that calls past it — the normal case
 * — need no read; only replays look entries up.
 *
 * @example
 * ```ts
 * const recorded = await journal.lookup(runId, seq);
 * ```
 */
export class RunJournal {
  readonly #store: RunStore;
  readonly #heads = new Map<string, number>();
  /**
   * Runs on their last replay (out of attempts, see {@link startLastReplay}), and whether one
   * of their calls went past the journal.
   */
  readonly #lastReplays = new Map<string, boolean>();

  constructor(store: RunStore) {
    this.#store = store;
  }

  async lookup(runId: string, seq: number): Promise<JournalEntry | undefined> {
    let head = this.#heads.get(runId);
    if (head === undefined) {
      // A call of the run recorded while this read was out has raised the head: keep the higher.
      this.noteHead(runId, await this.#store.journalHead(runId));
      head = this.#heads.get(runId) ?? 0;
    }
    if (seq > head) return undefined;
    return this.#store.getJournal(runId, seq);
  }

  /**
   * A run's head as storage has just read it (an attempt starting): its first call then needs
   * no read. Never lowers a head already known, since a run's journal only grows.
   */
  noteHead(runId: string, head: number): void {
    this.#remember(runId, Math.max(this.#heads.get(runId) ?? 0, head));
  }

  /**
   * A run that has used all its attempts is replayed once more, only from its journal: it may
   * have finished before a crash that kept its end off the record. Its calls that the journal
   * holds return their results; any other call is refused (see {@link refusesNewCalls}).
   */
  startLastReplay(runId: string): void {
    this.#lastReplays.set(runId, false);
  }

  /** Whether the run is on its last replay; if so, notes that it asked for a new call. */
  refusesNewCalls(runId: string): boolean {
    if (!this.#lastReplays.has(runId)) return false;
    this.#lastReplays.set(runId, true);
    return true;
  }

  /**
   * Ends a run's last replay: whether it asked for a call its journal does not hold
   * (`undefined` when the run was not on its last replay).
   */
  endLastReplay(runId: string): boolean | undefined {
    const wentPast = this.#lastReplays.get(runId);
    this.#lastReplays.delete(runId);
    return wentPast;
  }

  async record(entry: JournalEntry): Promise<void> {
    await this.#store.appendJournal(entry);
    this.#remember(entry.runId, Math.max(this.#heads.get(entry.runId) ?? 0, entry.seq));
  }

  #remember(runId: string, head: number): void {
    if (!this.#heads.has(runId) && this.#heads.size >= MAX_TRACKED_RUNS) {
      const oldest = this.#heads.keys().next();
      if (oldest.done !== true) this.#heads.delete(oldest.value);
    }
    this.#heads.set(runId, head);
  }
}
