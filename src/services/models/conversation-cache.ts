import type { ChatMessage } from './provider/model-provider.ts';

/** A run's last conversation, as the provider was sent it. */
export interface CachedConversation {
  /** The `llm.chat` call that sent it. */
  readonly seq: number;
  readonly messages: readonly ChatMessage[];
  /** The messages' tokens before the estimator's margin (see `TokenEstimator.countMessages`). */
  readonly messageTokens: number;
  /** Roughly the memory the messages hold, in UTF-16 units (see `conversationSize`). */
  readonly size: number;
}

export interface ConversationCacheLimits {
  /** All conversations held together, in UTF-16 units of their texts. */
  readonly maxSize: number;
  /** Runs whose conversation is held. */
  readonly maxRuns: number;
}

/** Per message: the role, ids and punctuation a size counts besides the texts. */
const MESSAGE_OVERHEAD = 64;

/**
 * The size `ConversationCache` counts for messages: the texts' length in UTF-16 units, tool
 * calls' arguments as JSON, and a fixed overhead per message. Linear in the messages; it reads
 * each argument object once.
 */
export function conversationSize(messages: readonly ChatMessage[]): number {
  let size = 0;
  for (const message of messages) {
    size += MESSAGE_OVERHEAD + message.content.length;
    if (message.role === 'assistant' && message.toolCalls !== undefined) {
      for (const call of message.toolCalls) {
        size += MESSAGE_OVERHEAD + call.id.length + call.name.length;
        size += JSON.stringify(call.arguments).length;
      }
    }
  }
  return size;
}

/**
 * The last conversation each run sent to a model, so that the run's next `llm.chat` can carry
 * only the messages it adds (`continues`) instead of the whole conversation again: the node then
 * validates, digests, counts and audits what is new, and a run's cost stays linear in its
 * length. One conversation per run (the latest call's), the least recently used dropped first
 * past either limit; a conversation larger than the whole cache is not held. Only calls the
 * node runs put a conversation here — never a replayed one — so a call that found its
 * conversation gone finds it gone again when its run is replayed: the refusal it got is
 * deterministic, and the program's fallback (the whole conversation) happens again too.
 *
 * @example
 * ```ts
 * const cache = new ConversationCache({ maxSize: 64 * 1024 * 1024, maxRuns: 4096 });
 * cache.remember(runId, { seq: 3, messages, messageTokens: 812, size: conversationSize(messages) });
 * cache.get(runId, 3)?.messages; // then the new messages follow them
 * ```
 */
export class ConversationCache {
  readonly #limits: ConversationCacheLimits;
  /** By run, least recently used first (a Map keeps insertion order). */
  readonly #byRun = new Map<string, CachedConversation>();
  #size = 0;

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
    if (conversation.size > this.#limits.maxSize) return;
    this.#byRun.set(runId, conversation);
    this.#size += conversation.size;
    for (const [oldest, cached] of this.#byRun) {
      if (this.#size <= this.#limits.maxSize && this.#byRun.size <= this.#limits.maxRuns) break;
      this.#drop(oldest, cached);
    }
  }

  /** Conversations held, and their total size. */
  get stats(): { readonly runs: number; readonly size: number } {
    return { runs: this.#byRun.size, size: this.#size };
  }

  #drop(runId: string, cached: CachedConversation): void {
    this.#byRun.delete(runId);
    this.#size -= cached.size;
  }
}
