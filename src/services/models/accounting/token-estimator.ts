import type { ChatRequest, ToolDefinition } from '../provider/model-provider.ts';

/** Counts the tokens of a piece of text. */
export type TokenCounter = (text: string) => number;

export interface TokenEstimatorOptions {
  /**
   * Multiplies counted tokens. The counter is OpenAI's o200k encoding; other families
   * (Claude, Llama, Qwen) cut the same text into up to about a quarter more tokens, and an
   * estimate that reserves a budget must not come out low.
   */
  readonly margin?: number;
  /** Above this many UTF-16 units, text is not tokenized: its UTF-8 byte count bounds it. */
  readonly maxTokenizedLength?: number;
}

/** Tokens a chat format adds around each message (role markers, separators). */
const PER_MESSAGE_OVERHEAD = 4;
/** Tokens a request adds once (priming of the assistant's answer). */
const PER_REQUEST_OVERHEAD = 3;

/** The longest text counted in one piece when it holds a long word (see `#raw`). */
const PIECE_LENGTH = 256;
/** A run of characters without a space long enough for BPE's merging to be slow. */
const LONG_WORD = new RegExp(`\\S{${PIECE_LENGTH / 2},}`);

/**
 * Estimates the tokens of a request before it is sent, to reserve a budget and to charge a
 * rate limit. It counts with a real BPE tokenizer (o200k) and rounds up by a margin; the
 * provider's reported usage settles the difference afterwards.
 *
 * @example
 * ```ts
 * const estimator = await loadTokenEstimator();
 * estimator.estimateInput({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }); // ≈ 10
 * ```
 */
export class TokenEstimator {
  readonly #count: TokenCounter;
  readonly #margin: number;
  readonly #maxTokenizedLength: number;

  constructor(count: TokenCounter, options: TokenEstimatorOptions = {}) {
    this.#count = count;
    this.#margin = options.margin ?? 1.25;
    this.#maxTokenizedLength = options.maxTokenizedLength ?? 1_048_576;
  }

  /** Tokens of plain text, rounded up by the margin. */
  countText(text: string): number {
    return Math.ceil(this.#raw(text) * this.#margin);
  }

  /**
   * Input tokens of a chat request: messages, tool calls in the history and tool schemas.
   * `messageTokens`, when given, is what `countMessages` counted for the messages (a
   * conversation counted part by part, as it grew).
   */
  estimateInput(
    request: Pick<ChatRequest, 'messages' | 'tools'>,
    messageTokens: number = this.countMessages(request.messages),
  ): number {
    let tokens = PER_REQUEST_OVERHEAD + messageTokens;
    for (const tool of request.tools ?? []) tokens += this.#toolTokens(tool);
    return Math.ceil(tokens * this.#margin);
  }

  /**
   * The tokens of messages before the margin: counts of consecutive parts of a conversation
   * add up to the whole's.
   */
  countMessages(messages: ChatRequest['messages']): number {
    let tokens = 0;
    for (const message of messages) {
      tokens += PER_MESSAGE_OVERHEAD + this.#raw(message.content);
      if (message.role === 'assistant' && message.toolCalls !== undefined) {
        for (const call of message.toolCalls) {
          tokens +=
            PER_MESSAGE_OVERHEAD + this.#raw(call.name) + this.#raw(JSON.stringify(call.arguments));
        }
      }
    }
    return tokens;
  }

  /** Input tokens of an embedding request. */
  estimateEmbedding(inputs: readonly string[]): number {
    let tokens = 0;
    for (const input of inputs) tokens += this.#raw(input);
    return Math.ceil(tokens * this.#margin);
  }

  #toolTokens(tool: ToolDefinition): number {
    return (
      PER_MESSAGE_OVERHEAD +
      this.#raw(tool.name) +
      this.#raw(tool.description ?? '') +
      this.#raw(JSON.stringify(tool.parameters))
    );
  }

  #raw(text: string): number {
    if (text.length === 0) return 0;
    // A token covers at least one byte, so the byte count bounds the tokens of text too
    // long to tokenize on the event loop.
    if (text.length > this.#maxTokenizedLength) return Buffer.byteLength(text);
    if (text.length <= PIECE_LENGTH || !LONG_WORD.test(text)) return this.#count(text);
    // BPE merges within a word take time that grows with the square of its length (120,000
    // letters without a space: 24 s on the node's event loop). Text with such a word is
    // counted in pieces, each counting one token more than it may for the cut.
    let tokens = 0;
    for (let start = 0; start < text.length; ) {
      let end = Math.min(text.length, start + PIECE_LENGTH);
      // Never between the two halves of a surrogate pair.
      if (end < text.length && /[\uDC00-\uDFFF]/.test(text.charAt(end))) end -= 1;
      tokens += this.#count(text.slice(start, end)) + 1;
      start = end;
    }
    return tokens;
  }
}

/**
 * Loads the o200k tokenizer (about 100 ms, once) and returns an estimator over it. Special
 * token markers in the text (`<|endoftext|>`) are counted as ordinary text, never refused.
 *
 * @example
 * ```ts
 * const estimator = await loadTokenEstimator({ margin: 1.25 });
 * ```
 */
export async function loadTokenEstimator(
  options: TokenEstimatorOptions = {},
): Promise<TokenEstimator> {
  const { estimator, load } = deferredTokenEstimator(options);
  await load();
  return estimator;
}

/**
 * An estimator usable at once, whose tokenizer loads later: until `load()` has finished
 * (about 100 ms of main-thread work, kept off the node's start-up path), text is bounded by
 * its UTF-8 byte count, which never comes out low. `load()` starts loading once and settles
 * when the tokenizer is in use; if it fails, the byte bound stays and it rejects.
 *
 * @example
 * ```ts
 * const { estimator, load } = deferredTokenEstimator({ margin: 1.25 });
 * setTimeout(() => load().catch((error) => logger.warn({ err: error })), 250);
 * ```
 */
export function deferredTokenEstimator(options: TokenEstimatorOptions = {}): {
  readonly estimator: TokenEstimator;
  load(): Promise<void>;
} {
  let count: TokenCounter = (text) => Buffer.byteLength(text);
  let loading: Promise<void> | undefined;
  return {
    estimator: new TokenEstimator((text) => count(text), options),
    load() {
      loading ??= import('gpt-tokenizer/encoding/o200k_base').then(({ countTokens }) => {
        const encodeOptions = { disallowedSpecial: new Set<string>() };
        count = memoisedCounter((text) => countTokens(text, encodeOptions));
      });
      return loading;
    },
  };
}

/** Texts longer than this are counted each time (their hash would cost a noticeable share). */
const MEMO_MAX_TEXT = 65_536;
/** Characters the memo holds at most, over all its texts (about 8 MiB of UTF-16). */
const MEMO_MAX_CHARACTERS = 4_194_304;

/**
 * Remembers the counts of recent texts. A conversation is sent again at every turn with one
 * message more, so without it each call would tokenize the whole history again (quadratic in
 * the run's length); with it, only the new messages are tokenized. Oldest texts go first.
 */
function memoisedCounter(count: TokenCounter): TokenCounter {
  const memo = new Map<string, number>();
  let characters = 0;
  return (text) => {
    if (text.length > MEMO_MAX_TEXT) return count(text);
    const known = memo.get(text);
    if (known !== undefined) return known;
    const counted = count(text);
    memo.set(text, counted);
    characters += text.length;
    for (const oldest of memo.keys()) {
      if (characters <= MEMO_MAX_CHARACTERS) break;
      memo.delete(oldest);
      characters -= oldest.length;
    }
    return counted;
  };
}
