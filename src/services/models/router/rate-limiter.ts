import { KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';
import { abortReasonOf, type Scheduler } from './scheduler.ts';

export interface RateLimiterOptions {
  /** Requests per minute; also the burst. Unset: requests are not limited. */
  readonly requestsPerMinute?: number;
  /** Tokens per minute; also the burst and the largest single request. Unset: not limited. */
  readonly tokensPerMinute?: number;
  /** `queue` waits its turn (FIFO); `refuse` throws `KEEL_RATE_LIMITED` at once. */
  readonly mode: 'queue' | 'refuse';
  /** Longest wait a queued caller accepts before it is refused; default 30 000 ms. */
  readonly maxQueueMs?: number;
  /** Most callers waiting at once; default 1 000. */
  readonly maxQueueLength?: number;
}

/** One admitted request. Call `settle` once the provider reported the real token usage. */
export interface RateLimitPermit {
  readonly requestedTokens: number;
  /**
   * Corrects the tokens bucket by `actualTokens - requestedTokens`: a refund when fewer were
   * used, a debt (the bucket may go negative, delaying later callers) when more. Settling again
   * is a no-op.
   */
  settle(actualTokens: number): void;
}

export interface RateLimiterSnapshot {
  /** Requests available now; undefined when requests are not limited. */
  readonly availableRequests: number | undefined;
  /** Tokens available now, negative while in debt; undefined when tokens are not limited. */
  readonly availableTokens: number | undefined;
  readonly queueLength: number;
}

type LimitName = 'requests' | 'tokens';

interface Wait {
  readonly milliseconds: number;
  /** The bucket that is last to have enough. */
  readonly limit: LimitName;
}

interface Waiter {
  readonly tokens: number;
  readonly deadline: number;
  readonly grant: () => void;
  readonly refuse: (error: KeelError) => void;
}

// Waits are whole milliseconds, at least 1, so a waiting pump always lets time move on, and a
// wait that float rounding put a hair above a whole number does not cost an extra millisecond.
const ROUNDING_TOLERANCE_MS = 1e-6;

/**
 * A continuously refilling bucket: `capacity` per minute, starting full. Private to the limiter;
 * its level may go negative through debt.
 */
class TokenBucket {
  readonly capacity: number;
  readonly #perMillisecond: number;
  readonly #tolerance: number;
  #level: number;
  #updatedAt: number;

  constructor(perMinute: number, now: number) {
    this.capacity = perMinute;
    this.#perMillisecond = perMinute / 60_000;
    this.#tolerance = Math.max(1e-9, perMinute * 1e-12);
    this.#level = perMinute;
    this.#updatedAt = now;
  }

  level(now: number): number {
    const elapsed = Math.max(0, now - this.#updatedAt);
    this.#level = Math.min(this.capacity, this.#level + elapsed * this.#perMillisecond);
    this.#updatedAt = Math.max(this.#updatedAt, now);
    return this.#level;
  }

  /**
   * Whole milliseconds until `amount` is available, from `level` (default: the level now); 0
   * when it is available now. The bucket's tolerance absorbs the float rounding of the refill.
   */
  waitFor(amount: number, now: number, level = this.level(now)): number {
    if (level + this.#tolerance >= amount) return 0;
    const exact = (amount - level) / this.#perMillisecond;
    return Math.max(1, Math.ceil(exact - ROUNDING_TOLERANCE_MS));
  }

  /** The level `milliseconds` after one of `level`, without changing the bucket. */
  levelAfter(level: number, milliseconds: number): number {
    return Math.min(this.capacity, level + milliseconds * this.#perMillisecond);
  }

  adjust(delta: number, now: number): void {
    this.#level = Math.min(this.capacity, this.level(now) + delta);
  }
}

/**
 * Token buckets for requests per minute and tokens per minute in front of one provider. Each
 * bucket holds up to its per-minute amount and refills continuously; `acquire` takes one request
 * and the estimated tokens, `settle` corrects the estimate afterwards.
 *
 * In `queue` mode callers are served strictly first come, first served: a small request never
 * overtakes a large one at the head, so none starves. A caller whose turn would come later than
 * `maxQueueMs` (estimated from the callers ahead of it), or who finds the queue full, is refused
 * at once with `retryAfterMs`; when debt from `settle` pushes the turn of the caller at the head
 * past its limit, that caller is refused then. Waits are whole milliseconds.
 *
 * Bound: the requests granted in any closed window of `w` ms number at most
 * `floor(requestsPerMinute × (1 + w / 60 000))`: the full bucket plus its refill during the
 * window. So at most `2 × requestsPerMinute` in any 60 s (the burst, then the steady rate).
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter({ requestsPerMinute: 500, tokensPerMinute: 90_000, mode: 'queue' }, systemScheduler);
 * const permit = await limiter.acquire(estimatedTokens, signal);
 * const response = await provider.doChat(request, { signal });
 * permit.settle(response.usage.totalTokens);
 * ```
 */
export class RateLimiter {
  readonly #scheduler: Scheduler;
  readonly #mode: 'queue' | 'refuse';
  readonly #maxQueueMs: number;
  readonly #maxQueueLength: number;
  readonly #requests: TokenBucket | undefined;
  readonly #tokens: TokenBucket | undefined;
  readonly #queue: Waiter[] = [];
  #pumping = false;
  #wakePump: AbortController | undefined;

  constructor(options: RateLimiterOptions, scheduler: Scheduler) {
    const { requestsPerMinute, tokensPerMinute, mode } = options;
    const maxQueueMs = options.maxQueueMs ?? 30_000;
    const maxQueueLength = options.maxQueueLength ?? 1_000;
    if (
      requestsPerMinute !== undefined &&
      !(Number.isFinite(requestsPerMinute) && requestsPerMinute >= 1)
    ) {
      throw invalid('requestsPerMinute must be a finite number of 1 or more', {
        requestsPerMinute,
      });
    }
    if (
      tokensPerMinute !== undefined &&
      !(Number.isFinite(tokensPerMinute) && tokensPerMinute > 0)
    ) {
      throw invalid('tokensPerMinute must be a finite number above 0', { tokensPerMinute });
    }
    if (mode !== 'queue' && mode !== 'refuse') {
      throw invalid('mode must be queue or refuse', { mode });
    }
    if (!(Number.isFinite(maxQueueMs) && maxQueueMs >= 0)) {
      throw invalid('maxQueueMs must be a finite number of 0 or more', { maxQueueMs });
    }
    if (!(Number.isInteger(maxQueueLength) && maxQueueLength >= 0)) {
      throw invalid('maxQueueLength must be an integer of 0 or more', { maxQueueLength });
    }
    const now = scheduler.now();
    this.#scheduler = scheduler;
    this.#mode = mode;
    this.#maxQueueMs = maxQueueMs;
    this.#maxQueueLength = maxQueueLength;
    this.#requests =
      requestsPerMinute === undefined ? undefined : new TokenBucket(requestsPerMinute, now);
    this.#tokens =
      tokensPerMinute === undefined ? undefined : new TokenBucket(tokensPerMinute, now);
  }

  /**
   * Takes one request and `tokens` tokens, waiting for them in `queue` mode. Rejects with
   * `KEEL_RATE_LIMITED` (with `retryAfterMs`) when refused, non-retryable when `tokens` exceeds
   * the bucket, and with `KEEL_ABORTED` / `KEEL_TIMEOUT` when the signal ends the wait.
   */
  async acquire(tokens: number, signal: AbortSignal): Promise<RateLimitPermit> {
    if (!(Number.isFinite(tokens) && tokens >= 0)) {
      throw invalid('tokens must be a finite number of 0 or more', { tokens });
    }
    if (signal.aborted) throw abortReasonOf(signal);
    if (this.#tokens !== undefined && tokens > this.#tokens.capacity) {
      throw new KeelError(
        'KEEL_RATE_LIMITED',
        `a request for ${tokens} tokens can never fit a bucket of ${this.#tokens.capacity}`,
        {
          retryable: false,
          hint: 'split the request, lower max tokens, or raise tokensPerMinute',
          details: { limit: 'tokens', requestedTokens: tokens, capacity: this.#tokens.capacity },
        },
      );
    }
    const now = this.#scheduler.now();
    if (this.#queue.length === 0) {
      const wait = this.#waitFor(tokens, now);
      if (wait.milliseconds === 0) return this.#take(tokens, now);
      if (this.#mode === 'refuse') throw this.#refusal('unavailable', wait, tokens);
    }
    const wait = this.#queuedWait(tokens, now);
    if (this.#queue.length >= this.#maxQueueLength) throw this.#refusal('queue-full', wait, tokens);
    if (wait.milliseconds > this.#maxQueueMs) throw this.#refusal('queue-wait', wait, tokens);
    return this.#enqueue(tokens, now + this.#maxQueueMs, signal);
  }

  snapshot(): RateLimiterSnapshot {
    const now = this.#scheduler.now();
    return Object.freeze({
      availableRequests: this.#requests?.level(now),
      availableTokens: this.#tokens?.level(now),
      queueLength: this.#queue.length,
    });
  }

  #enqueue(tokens: number, deadline: number, signal: AbortSignal): Promise<RateLimitPermit> {
    return new Promise<RateLimitPermit>((resolve, reject) => {
      const onAbort = (): void => {
        const position = this.#queue.indexOf(waiter);
        if (position === -1) return;
        this.#queue.splice(position, 1);
        reject(abortReasonOf(signal));
        // The next caller may be served now that a larger one left the head.
        if (position === 0) this.#startOrWakePump();
      };
      const waiter: Waiter = {
        tokens,
        deadline,
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.#take(tokens, this.#scheduler.now()));
        },
        refuse: (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.#queue.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#startOrWakePump();
    });
  }

  #startOrWakePump(): void {
    if (this.#pumping) {
      this.#wakePump?.abort();
      return;
    }
    if (this.#queue.length === 0) return;
    this.#pumping = true;
    void this.#pump();
  }

  /** Serves the head of the queue whenever it fits; the only place queued callers are granted. */
  async #pump(): Promise<void> {
    try {
      for (let head = this.#queue[0]; head !== undefined; head = this.#queue[0]) {
        const now = this.#scheduler.now();
        const wait = this.#waitFor(head.tokens, now);
        if (wait.milliseconds === 0) {
          this.#queue.shift();
          head.grant();
          continue;
        }
        if (now + wait.milliseconds > head.deadline) {
          this.#queue.shift();
          head.refuse(this.#refusal('queue-wait', wait, head.tokens));
          continue;
        }
        const wake = new AbortController();
        this.#wakePump = wake;
        try {
          await this.#scheduler.sleep(wait.milliseconds, wake.signal);
        } catch (error) {
          // Woken early (a refund, an abort at the head): look again. Anything else is fatal.
          if (!wake.signal.aborted) throw error;
        } finally {
          this.#wakePump = undefined;
        }
      }
    } catch (error) {
      // A broken scheduler must not leave callers waiting forever.
      const failure = toKeelError(error);
      for (const waiter of this.#queue.splice(0)) waiter.refuse(failure);
    } finally {
      this.#pumping = false;
    }
  }

  #take(tokens: number, now: number): RateLimitPermit {
    this.#requests?.adjust(-1, now);
    this.#tokens?.adjust(-tokens, now);
    let settled = false;
    return Object.freeze({
      requestedTokens: tokens,
      settle: (actualTokens: number): void => {
        if (!(Number.isFinite(actualTokens) && actualTokens >= 0)) {
          throw invalid('actualTokens must be a finite number of 0 or more', { actualTokens });
        }
        if (settled) return;
        settled = true;
        if (this.#tokens === undefined || actualTokens === tokens) return;
        this.#tokens.adjust(tokens - actualTokens, this.#scheduler.now());
        // A refund may let the head go sooner; a debt may push it past its limit.
        if (this.#queue.length > 0) this.#startOrWakePump();
      },
    });
  }

  #waitFor(tokens: number, now: number): Wait {
    const requests = this.#requests?.waitFor(1, now) ?? 0;
    const tokensWait = this.#tokens?.waitFor(tokens, now) ?? 0;
    return tokensWait > requests
      ? { milliseconds: tokensWait, limit: 'tokens' }
      : { milliseconds: requests, limit: 'requests' };
  }

  /** When a caller joining the queue now would be served, replaying the callers ahead of it. */
  #queuedWait(tokens: number, now: number): Wait {
    let requestsLevel = this.#requests?.level(now) ?? 0;
    let tokensLevel = this.#tokens?.level(now) ?? 0;
    let elapsed = 0;
    let limit: LimitName = 'requests';
    for (const amount of [...this.#queue.map((waiter) => waiter.tokens), tokens]) {
      const requestsWait = this.#requests?.waitFor(1, now, requestsLevel) ?? 0;
      const tokensWait = this.#tokens?.waitFor(amount, now, tokensLevel) ?? 0;
      const step = Math.max(requestsWait, tokensWait);
      if (tokensWait > requestsWait) limit = 'tokens';
      else if (requestsWait > 0) limit = 'requests';
      elapsed += step;
      requestsLevel = (this.#requests?.levelAfter(requestsLevel, step) ?? 0) - 1;
      tokensLevel = (this.#tokens?.levelAfter(tokensLevel, step) ?? 0) - amount;
    }
    return { milliseconds: elapsed, limit };
  }

  #refusal(
    reason: 'unavailable' | 'queue-full' | 'queue-wait',
    wait: Wait,
    tokens: number,
  ): KeelError {
    const now = this.#scheduler.now();
    return new KeelError(
      'KEEL_RATE_LIMITED',
      `the ${wait.limit} per minute limit refused the call`,
      {
        retryAfterMs: Math.ceil(wait.milliseconds),
        details: {
          limit: wait.limit,
          reason,
          requestedTokens: tokens,
          availableRequests: this.#requests?.level(now),
          availableTokens: this.#tokens?.level(now),
          queueLength: this.#queue.length,
        },
      },
    );
  }
}

function invalid(message: string, details: Record<string, unknown>): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, { details });
}
