import type { JsonObject, JsonValue } from './json-value.ts';

export type RunStatus = 'pending' | 'running' | 'suspended' | 'succeeded' | 'failed' | 'cancelled';

export interface RunRecord {
  readonly id: string;
  readonly agentId: string;
  readonly status: RunStatus;
  readonly task: JsonObject;
  readonly result: JsonValue | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NewRun {
  readonly id: string;
  readonly agentId: string;
  readonly task: JsonObject;
  readonly now: number;
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

export interface RunListFilter {
  readonly agentId?: string;
  readonly status?: RunStatus;
  readonly limit?: number;
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
  updateStatus(id: string, status: RunStatus, now: number, result?: JsonValue): Promise<RunRecord>;
  /** Fails with `KEEL_CONFLICT` when `(runId, seq)` is already recorded: results are written once. */
  appendJournal(entry: JournalEntry): Promise<void>;
  getJournal(runId: string, seq: number): Promise<JournalEntry | undefined>;
  /** The highest recorded sequence number of a run's journal, 0 when it has none. */
  journalHead(runId: string): Promise<number>;
  listJournal(runId: string): Promise<readonly JournalEntry[]>;
}
