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
   * Runs on their last replay (see {@link startLastReplay}): the journal head it began with,
   * whether it went past its journal, and whether that was told (`endLastReplay`).
   */
  readonly #lastReplays = new Map<string, LastReplay>();

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
   * holds return their results; any other call is refused (see {@link refusesNewCalls}) until
   * a counted attempt of the run starts ({@link attemptStarted}), also after the replay is
   * over: a call still on its way when the run ended must not run either.
   */
  startLastReplay(runId: string, head: number): void {
    this.#lastReplays.delete(runId);
    if (this.#lastReplays.size >= MAX_TRACKED_RUNS) {
      const oldest = this.#lastReplays.keys().next();
      if (oldest.done !== true) this.#lastReplays.delete(oldest.value);
    }
    this.#lastReplays.set(runId, { head, wentPast: false, told: false });
  }

  /**
   * A call of a run has arrived (noted before anything awaits, so a call sent just before its
   * run's end is seen first): one past the head its last replay began with goes past its
   * journal.
   */
  noteCall(runId: string, seq: number): void {
    const replay = this.#lastReplays.get(runId);
    if (replay !== undefined && seq > replay.head) replay.wentPast = true;
  }

  /** A call of a run on its last replay differs from the one its journal holds. */
  noteDivergence(runId: string): void {
    const replay = this.#lastReplays.get(runId);
    if (replay !== undefined) replay.wentPast = true;
  }

  /** Whether a call the journal does not hold is refused; if so, notes that it was asked. */
  refusesNewCalls(runId: string): boolean {
    const replay = this.#lastReplays.get(runId);
    if (replay === undefined) return false;
    replay.wentPast = true;
    return true;
  }

  /**
   * A run's last replay is over: whether it went past its journal, told once (`undefined`
   * when the run was not on its last replay, or this was told already). Its new calls are
   * still refused.
   */
  endLastReplay(runId: string): boolean | undefined {
    const replay = this.#lastReplays.get(runId);
    if (replay === undefined || replay.told) return undefined;
    replay.told = true;
    return replay.wentPast;
  }

  /** A counted attempt of the run starts: its calls run again. */
  attemptStarted(runId: string): void {
    this.#lastReplays.delete(runId);
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

interface LastReplay {
  readonly head: number;
  wentPast: boolean;
  told: boolean;
}
