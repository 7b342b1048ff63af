import type { ChatMessage } from './provider/model-provider.ts';

/** A run's last conversation, as the provider was sent it. */
export interface CachedConversation {
  /** The `llm.chat` call that sent it. */
  readonly seq: number;
  readonly messages: readonly ChatMessage[];
  /** The messages' tokens before the estimator's margin (see `TokenEstimator.countMessages`). */
  readonly messageTokens: number;
  /** UTF-8 bytes of the messages' canonical JSON (the array): what a whole call would carry. */
  readonly bytes: number;
}

export interface ConversationCacheLimits {
  /** All conversations held together, in UTF-8 bytes of their canonical JSON. */
  readonly maxBytes: number;
  /** Runs whose conversation is held. */
  readonly maxRuns: number;
}

/** 64 MiB of canonical JSON, 4,096 runs. */
export const DEFAULT_CONVERSATION_LIMITS: ConversationCacheLimits = {
  maxBytes: 64 * 1024 * 1024,
  maxRuns: 4_096,
};

/**
 * The last conversation each run sent to a model, so that the run's next `llm.chat` can carry
 * only the messages it adds (`continues`) instead of the whole conversation again: the node then
 * validates, digests, counts and audits what is new, and a run's cost stays linear in its
 * length. One conversation per run (the latest call's), the least recently used dropped first
 * past either limit; a conversation larger than the whole cache is not held. Only calls the
 * node runs put a conversation here — never a replayed one —, and a program continues only a
 * call whose answer it got, which the journal therefore holds and which never runs again: a
 * call refused because its conversation was gone is refused again when its run is replayed,
 * and the program's fallback (the whole conversation) happens again too.
 *
 * @example
 * ```ts
 * const cache = new ConversationCache({ maxBytes: 64 * 1024 * 1024, maxRuns: 4096 });
 * cache.remember(runId, { seq: 3, messages, messageTokens: 812, bytes: 4_210 });
 * cache.get(runId, 3)?.messages; // then the new messages follow them
 * ```
 */
export class ConversationCache {
  readonly #limits: ConversationCacheLimits;
  /** By run, least recently used first (a Map keeps insertion order). */
  readonly #byRun = new Map<string, CachedConversation>();
  #bytes = 0;

  constructor(limits: ConversationCacheLimits) {
    this.#limits = limits;
  }

  /** The run's conversation if its last remembered call is `seq`; marks it recently used. */
  get(runId: string, seq: number): CachedConversation | undefined {
    const cached = this.#byRun.get(runId);
    if (cached === undefined || cached.seq !== seq) return undefined;
    this.#byRun.delete(runId);
    this.#byRun.set(runId, cached);
    return cached;
  }

  /** Holds `conversation` as the run's latest (a later call's replaces an earlier one's). */
  remember(runId: string, conversation: CachedConversation): void {
    const previous = this.#byRun.get(runId);
    if (previous !== undefined) {
      if (previous.seq > conversation.seq) return;
      this.#drop(runId, previous);
    }
    if (conversation.bytes > this.#limits.maxBytes) return;
    this.#byRun.set(runId, conversation);
    this.#bytes += conversation.bytes;
    for (const [oldest, cached] of this.#byRun) {
      if (this.#withinLimits()) break;
      this.#drop(oldest, cached);
    }
  }

  /** Lets the run's conversation go (the run ended). */
  forget(runId: string): void {
    const cached = this.#byRun.get(runId);
    if (cached !== undefined) this.#drop(runId, cached);
  }

  #withinLimits(): boolean {
    return this.#bytes <= this.#limits.maxBytes && this.#byRun.size <= this.#limits.maxRuns;
  }

  /** Conversations held, and their total bytes. */
  get stats(): { readonly runs: number; readonly bytes: number } {
    return { runs: this.#byRun.size, bytes: this.#bytes };
  }

  #drop(runId: string, cached: CachedConversation): void {
    this.#byRun.delete(runId);
    this.#bytes -= cached.bytes;
  }
}
