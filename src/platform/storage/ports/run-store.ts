import type { JsonObject, JsonValue } from './json-value.ts';

/**
 * `pending`: queued, waiting for a worker; `running`: a worker runs (or will resume) it;
 * `suspended`: waiting for an operator (its agent was stopped or paused); the last four end it.
 * `dead-lettered`: its worker failed on it more times than the agent's `maxAttempts`.
 */
export type RunStatus =
  | 'pending'
  | 'running'
  | 'suspended'
  | 'succeeded'
  | 'failed'
  | 'cancelled'
  | 'dead-lettered';

/** The statuses that end a run. */
export type FinalRunStatus = 'succeeded' | 'failed' | 'cancelled' | 'dead-lettered';

/** Statuses a run never leaves. */
export const FINAL_RUN_STATUSES: readonly RunStatus[] = [
  'succeeded',
  'failed',
  'cancelled',
  'dead-lettered',
];

export interface RunRecord {
  readonly id: string;
  readonly agentId: string;
  readonly status: RunStatus;
  readonly task: JsonObject;
  readonly result: JsonValue | null;
  /** The error (a KeelError's JSON) that ended it, or the last worker failure. */
  readonly error: JsonValue | null;
  /** 0–9, higher first. */
  readonly priority: number;
  /** How many times a worker started (or resumed) it. */
  readonly attempts: number;
  /** Who asked for it: `cli`, `api`, `schedule:<n>`, `demo`… */
  readonly origin: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NewRun {
  readonly id: string;
  readonly agentId: string;
  readonly task: JsonObject;
  readonly now: number;
  readonly priority?: number;
  readonly origin?: string;
}

/** One syscall's recorded result in a run's journal, keyed by `(runId, seq)`. */
export interface JournalEntry {
  readonly runId: string;
  readonly seq: number;
  readonly kind: string;
  /** Digest of the intent, so a replay can tell that the program asked the same thing. */
  readonly intentDigest: string;
  readonly outcome: 'ok' | 'error';
  /** The value on `ok`; the error's JSON on `error`. */
  readonly result: JsonValue;
  readonly recordedAt: number;
}

/** What `RunStore.startAttempt` did, with the run as it is now. */
export interface AttemptStart {
  readonly outcome: 'started' | 'ended' | 'exhausted';
  readonly run: RunRecord;
  /** The highest recorded sequence number of its journal, 0 when it has none. */
  readonly journalHead: number;
}

/** What `RunStore.requeueSuspended` did, with the run as it is now. */
export interface RunRequeue {
  readonly requeued: boolean;
  readonly run: RunRecord;
}

/** What `RunStore.end` did, with the run as it is now. */
export interface RunEnd {
  readonly ended: boolean;
  readonly run: RunRecord;
}

export interface RunListFilter {
  readonly agentId?: string;
  readonly status?: RunStatus;
  /** Any of these statuses (combined with `status` when both are given). */
  readonly statuses?: readonly RunStatus[];
  /** At most this many (default 100, at most 1,000), newest first. */
  readonly limit?: number;
  /**
   * Only runs listed after this one (the last of the previous page): with `limit`, pages
   * through every run that matches (see {@link forEachRun}).
   */
  readonly after?: { readonly createdAt: number; readonly id: string };
}

/** The most runs one `list` returns. */
export const RUN_PAGE_LIMIT = 1000;

/**
 * Calls `visit` with every run that matches `filter`, newest first, a page at a time: not
 * only the first page's (`list` returns at most {@link RUN_PAGE_LIMIT}).
 *
 * @example
 * ```ts
 * await forEachRun(storage.runs, { statuses: ['pending', 'running'] }, (run) => queue(run));
 * ```
 */
export async function forEachRun(
  store: Pick<RunStore, 'list'>,
  filter: Omit<RunListFilter, 'limit' | 'after'>,
  visit: (run: RunRecord) => void | Promise<void>,
): Promise<number> {
  let after: RunListFilter['after'];
  let count = 0;
  for (;;) {
    const page = await store.list({
      ...filter,
      limit: RUN_PAGE_LIMIT,
      ...(after === undefined ? {} : { after }),
    });
    for (const run of page) await visit(run);
    count += page.length;
    const last = page.at(-1);
    if (page.length < RUN_PAGE_LIMIT || last === undefined) return count;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

/**
 * Runs and their durable journals.
 *
 * @example
 * ```ts
 * await storage.runs.appendJournal({ runId, seq: 3, kind: 'clock.now', intentDigest, outcome: 'ok', result: 1767225600000, recordedAt: now });
 * ```
 */
export interface RunStore {
  /** Fails with `KEEL_NOT_FOUND` when the agent does not exist, `KEEL_CONFLICT` on a duplicate id. */
  create(run: NewRun): Promise<RunRecord>;
  get(id: string): Promise<RunRecord | undefined>;
  list(filter?: RunListFilter): Promise<readonly RunRecord[]>;
  /**
   * Moves a run that has not ended to `pending`, `running` or `suspended` (with the error that
   * sent it there, if any). A run that has ended is returned unchanged: nothing brings it back.
   * A final status is `KEEL_INVALID_ARGUMENT`: runs end through `end`.
   */
  updateStatus(
    id: string,
    status: Exclude<RunStatus, FinalRunStatus>,
    now: number,
    error?: JsonValue,
  ): Promise<RunRecord>;
  /**
   * Moves a `suspended` run to `pending` (`requeued` true), keeping its error. A run in any
   * other status is returned unchanged (`requeued` false), so that of two paths resuming one
   * run (its approval decided, its agent started) only one queues it, and a run already
   * running again is not sent back. `KEEL_NOT_FOUND` for an unknown run.
   */
  requeueSuspended(id: string, now: number): Promise<RunRequeue>;
  /**
   * A worker starts (or resumes) the run: `attempts` goes up by one and the status becomes
   * `running` (`started`), unless the run already ended (`ended`) or has had `maxAttempts`
   * attempts (`exhausted`); those two leave it unchanged. Also answers its journal's head, read
   * in the same step, so that the first call of the attempt need not ask. `KEEL_NOT_FOUND` for
   * an unknown run.
   */
  startAttempt(id: string, now: number, maxAttempts: number): Promise<AttemptStart>;
  /**
   * Ends a run that has not ended: the final `status` with its result or error (`ended`
   * true). A run that already ended is returned unchanged (`ended` false), so that of two
   * ends racing (a worker's result and an operator's cancel) the first wins.
   */
  end(
    id: string,
    status: FinalRunStatus,
    now: number,
    result?: JsonValue,
    error?: JsonValue,
  ): Promise<RunEnd>;
  /**
   * Undoes `startAttempt` for a run that never reached a worker: back to `pending`, one
   * attempt fewer. A run no longer `running` is returned unchanged.
   */
  returnAttempt(id: string, now: number): Promise<RunRecord>;
  /** How many syscalls each run has journaled, for listings. */
  journalCounts(runIds: readonly string[]): Promise<Readonly<Record<string, number>>>;
  /** Fails with `KEEL_CONFLICT` when `(runId, seq)` is already recorded: results are written once. */
  appendJournal(entry: JournalEntry): Promise<void>;
  getJournal(runId: string, seq: number): Promise<JournalEntry | undefined>;
  /** The highest recorded sequence number of a run's journal, 0 when it has none. */
  journalHead(runId: string): Promise<number>;
  listJournal(runId: string): Promise<readonly JournalEntry[]>;
}
