import { followAbort } from '../../../platform/clock/abort-link.ts';
import { isKeelError, KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../platform/observability/logger.ts';
import type {
  ChatDelta,
  ChatRequest,
  ChatResponse,
  EmbedRequest,
  EmbedResponse,
  ModelProviderV1,
} from '../provider/model-provider.ts';
import { type BackoffPolicy, backoffDelay } from './backoff-delay.ts';
import { type CallOutcome, CircuitBreaker, type CircuitPermit } from './circuit-breaker.ts';
import { RateLimiter, type RateLimiterOptions, type RateLimitPermit } from './rate-limiter.ts';
import type { Scheduler } from './scheduler.ts';

/** One place a model alias can be served: a configured provider and its model id. */
export interface RouteTarget {
  readonly provider: string;
  readonly model: string;
}

export interface RetryPolicy extends BackoffPolicy {
  /** Attempts per target before failing over to the next (default 2). */
  readonly maxAttempts: number;
  /** A Retry-After longer than this fails over at once instead of waiting. */
  readonly maxRetryAfterMs: number;
}

export interface ModelRouterOptions {
  readonly providers: ReadonlyMap<string, ModelProviderV1>;
  /** Alias → ordered targets, the fallback chain (e.g. cloud first, local Ollama last). */
  readonly aliases: ReadonlyMap<string, readonly RouteTarget[]>;
  readonly retry: RetryPolicy;
  /** Total time one call may take, across retries and failover (default 120 s). */
  readonly deadlineMs: number;
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  readonly providerLimits?: ReadonlyMap<string, RateLimiterOptions>;
  /** Applied per agent, to each agent separately. */
  readonly agentLimit?: RateLimiterOptions;
  readonly scheduler: Scheduler;
  readonly random?: () => number;
  readonly logger: Logger;
}

export interface RouteOptions {
  readonly signal: AbortSignal;
  /** The calling agent, for its rate limit. */
  readonly agentId?: string;
  /** Estimated tokens of the call, charged to token rate limits until usage settles it. */
  readonly estimatedTokens?: number;
  /** A shorter total deadline than the router's. */
  readonly deadlineMs?: number;
  /**
   * Why a target may not serve this call (e.g. `KEEL_MODEL_UNPRICED`), or undefined when it
   * may. The call fails with the first such error when no target is left.
   */
  readonly exclude?: (target: RouteTarget) => KeelError | undefined;
}

/** How one target was tried. */
export interface RouteAttempt {
  readonly provider: string;
  readonly model: string;
  /** `ok`, an error code, or why the target was skipped (`circuit-open`, `excluded: …`). */
  readonly outcome: string;
}

export interface RoutedChat extends ChatResponse {
  readonly target: RouteTarget;
  readonly attempts: readonly RouteAttempt[];
}

export interface RoutedEmbedding extends EmbedResponse {
  readonly target: RouteTarget;
  readonly attempts: readonly RouteAttempt[];
}

/** The first delta of a routed stream says where it is served from. */
export type RoutedDelta =
  | ChatDelta
  | {
      readonly type: 'route';
      readonly target: RouteTarget;
      readonly attempts: readonly RouteAttempt[];
    };

type Attempt<T> = (
  provider: ModelProviderV1,
  target: RouteTarget,
  signal: AbortSignal,
) => Promise<T>;

/**
 * Routes model calls: resolves an alias to its ordered targets, retries a retryable failure
 * with full-jitter backoff that honours Retry-After, fails over to the next target, keeps a
 * circuit breaker and rate limits per provider and a rate limit per agent, and holds every
 * call to one total deadline. An abort is never retried; a non-retryable error ends the call.
 * A stream fails over only before its first delta; after that a break is the caller's error.
 *
 * @example
 * ```ts
 * const answer = await router.chat('smart', { messages }, { signal, agentId });
 * answer.target; // { provider: 'openai', model: 'gpt-4o-mini' }
 * ```
 */
export class ModelRouter {
  readonly #options: ModelRouterOptions;
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #providerLimiters = new Map<string, RateLimiter>();
  readonly #agentLimiters = new Map<string, RateLimiter>();
  readonly #random: () => number;
  readonly #writtenOut = new Map<string, RouteTarget>();

  constructor(options: ModelRouterOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
    for (const [id] of options.providers) {
      const breaker = new CircuitBreaker({ ...options.breaker, scheduler: options.scheduler });
      breaker.onTransition((from, to, snapshot) =>
        options.logger.warn(
          { provider: id, from, to, consecutiveFailures: snapshot.consecutiveFailures },
          `circuit of provider ${id}: ${from} → ${to}`,
        ),
      );
      this.#breakers.set(id, breaker);
      const limit = options.providerLimits?.get(id);
      if (limit !== undefined)
        this.#providerLimiters.set(id, new RateLimiter(limit, options.scheduler));
    }
    for (const [alias, targets] of options.aliases) {
      for (const target of targets) {
        this.#writtenOut.set(`${target.provider}/${target.model}`, target);
        if (!options.providers.has(target.provider)) {
          throw new KeelError(
            'KEEL_CONFIG_INVALID',
            `model alias ${alias} names provider ${target.provider}, which is not configured`,
          );
        }
      }
    }
  }

  /** The targets of an alias, or of `provider/model` written out; `KEEL_MODEL_UNKNOWN` otherwise. */
  resolve(model: string): readonly RouteTarget[] {
    const targets = this.#options.aliases.get(model);
    if (targets !== undefined) return targets;
    // `provider/model` written out names one target of some alias: an operator chose it. Any
    // other model string would let a caller pick models nobody configured.
    const written = this.#writtenOut.get(model);
    if (written !== undefined) return [written];
    throw new KeelError(
      'KEEL_MODEL_UNKNOWN',
      `no model alias or provider/model named ${model} is configured`,
      {
        details: { model, aliases: [...this.#options.aliases.keys()].slice(0, 50) },
      },
    );
  }

  /** The breaker of each provider, for status reports and health checks. */
  breakers(): ReadonlyMap<string, CircuitBreaker> {
    return this.#breakers;
  }

  async chat(
    model: string,
    request: Omit<ChatRequest, 'model'>,
    options: RouteOptions,
  ): Promise<RoutedChat> {
    const { value, target, attempts } = await this.#route(
      model,
      options,
      (provider, routed, signal) =>
        provider.doChat({ ...request, model: routed.model }, { signal }),
      { usageOf: (answer) => answer.usage && answer.usage.inputTokens + answer.usage.outputTokens },
    );
    return { ...value, target, attempts };
  }

  async embed(
    model: string,
    request: Omit<EmbedRequest, 'model'>,
    options: RouteOptions,
  ): Promise<RoutedEmbedding> {
    const { value, target, attempts } = await this.#route(
      model,
      options,
      async (provider, routed, signal) => {
        if (!provider.capabilities.embeddings) {
          throw new KeelError(
            'KEEL_PROVIDER_REJECTED',
            `provider ${provider.id} has no embeddings`,
            {
              retryable: true,
              details: { provider: provider.id, reason: 'unsupported' },
            },
          );
        }
        return provider.doEmbed({ ...request, model: routed.model }, { signal });
      },
      { usageOf: (answer) => answer.usage?.inputTokens },
    );
    return { ...value, target, attempts };
  }

  /**
   * Streams a chat. Retries and failover happen until the first delta arrives; the first
   * delta yielded is `route`, naming the target that serves the stream.
   */
  async *stream(
    model: string,
    request: Omit<ChatRequest, 'model'>,
    options: RouteOptions,
  ): AsyncGenerator<RoutedDelta> {
    const started = await this.#route(
      model,
      options,
      async (provider, routed, signal) => {
        const iterator = provider
          .doStream({ ...request, model: routed.model }, { signal })
          [Symbol.asyncIterator]();
        const first = await iterator.next();
        return { iterator, first };
      },
      { hold: true },
    );
    const { iterator, first } = started.value;
    const { release, signal } = started.hold;
    // A consumer that stops early says nothing about the provider's health.
    let outcome: CallOutcome = 'neutral';
    try {
      yield { type: 'route', target: started.target, attempts: started.attempts };
      let next = first;
      while (next.done !== true) {
        yield next.value;
        next = await iterator.next();
      }
      outcome = 'success';
    } catch (error) {
      const failure = this.#deadlineError(error, signal, started.attempts);
      outcome = healthOutcome(failure, signal);
      throw failure;
    } finally {
      // A consumer that stops early ends the provider's stream too.
      if (outcome !== 'success') await iterator.return?.();
      release(outcome);
    }
  }

  async #route<T>(
    model: string,
    options: RouteOptions,
    attempt: Attempt<T>,
    how: {
      /** Keep the circuit permit and deadline for the caller (a stream still flowing). */
      readonly hold?: boolean;
      /** Tokens the answer reports, to settle rate limits with what was really used. */
      readonly usageOf?: (value: T) => number | undefined;
    } = {},
  ): Promise<{
    value: T;
    target: RouteTarget;
    attempts: RouteAttempt[];
    hold: { release: (outcome: CallOutcome) => void; signal: AbortSignal };
  }> {
    const { scheduler } = this.#options;
    const targets = this.resolve(model);
    const deadlineMs = Math.min(
      options.deadlineMs ?? this.#options.deadlineMs,
      this.#options.deadlineMs,
    );
    // One controller for the caller's abort and the deadline, cheaper than AbortSignal.any
    // (whose weak references and finalizers are garbage-collector work on every call).
    const call = new AbortController();
    const timer = setTimeout(
      () =>
        call.abort(
          new DOMException(`the model call took longer than ${deadlineMs} ms`, 'TimeoutError'),
        ),
      deadlineMs,
    );
    const unfollow = followAbort(options.signal, (reason) => call.abort(reason));
    const signal = call.signal;
    const settle = (): void => {
      clearTimeout(timer);
      unfollow();
    };
    const endsAt = scheduler.now() + deadlineMs;
    const attempts: RouteAttempt[] = [];
    const tokens = options.estimatedTokens ?? 0;
    let agentPermit: RateLimitPermit | undefined;
    let lastError: KeelError | undefined;
    let held = false;
    let usedTokens: number | undefined;
    try {
      if (options.agentId !== undefined && this.#options.agentLimit !== undefined) {
        agentPermit = await this.#agentLimiter(options.agentId).acquire(tokens, signal);
      }
      for (const target of targets) {
        const excluded = options.exclude?.(target);
        if (excluded !== undefined) {
          attempts.push({ ...target, outcome: `excluded: ${excluded.code}` });
          lastError ??= excluded;
          continue;
        }
        const provider = this.#options.providers.get(target.provider) as ModelProviderV1;
        const breaker = this.#breakers.get(target.provider) as CircuitBreaker;
        for (let retry = 0; retry < this.#options.retry.maxAttempts; retry += 1) {
          const admission = breaker.tryAcquire();
          if (!admission.permitted) {
            attempts.push({ ...target, outcome: 'circuit-open' });
            lastError = new KeelError(
              'KEEL_PROVIDER_UNAVAILABLE',
              `the circuit of provider ${target.provider} is open`,
              {
                retryAfterMs: admission.retryAfterMs,
                details: { provider: target.provider, reason: 'circuit-open' },
              },
            );
            break;
          }
          const permit: CircuitPermit = admission.permit;
          let limitPermit: RateLimitPermit | undefined;
          try {
            limitPermit = await this.#providerLimiters
              .get(target.provider)
              ?.acquire(tokens, signal);
            const value = await attempt(provider, target, signal);
            attempts.push({ ...target, outcome: 'ok' });
            usedTokens = how.usageOf?.(value);
            if (how.hold === true) {
              held = true;
              return {
                value,
                target,
                attempts,
                hold: {
                  release: (outcome) => {
                    permit.release(outcome);
                    settle();
                  },
                  signal,
                },
              };
            }
            permit.release('success');
            return { value, target, attempts, hold: { release: () => undefined, signal } };
          } catch (error) {
            const failure = this.#deadlineError(error, signal, attempts);
            attempts.push({ ...target, outcome: failure.code });
            permit.release(healthOutcome(failure, signal));
            if (signal.aborted || !failure.retryable) throw failure;
            lastError = failure;
            const wait = backoffDelay(
              retry,
              this.#options.retry,
              this.#random,
              failure.retryAfterMs,
            );
            // A target that cannot serve this kind of call at all is failed over, not retried.
            const lastTry =
              retry + 1 >= this.#options.retry.maxAttempts ||
              failure.details.reason === 'unsupported';
            const tooLong =
              (failure.retryAfterMs ?? 0) > this.#options.retry.maxRetryAfterMs ||
              scheduler.now() + wait >= endsAt;
            if (lastTry || tooLong) break;
            this.#options.logger.debug(
              {
                provider: target.provider,
                model: target.model,
                code: failure.code,
                waitMs: Math.round(wait),
              },
              'retrying a model call',
            );
            await scheduler.sleep(wait, signal);
          } finally {
            limitPermit?.settle(usedTokens ?? tokens);
          }
        }
      }
      throw this.#exhausted(model, lastError, attempts);
    } catch (error) {
      throw withAttempts(this.#deadlineError(error, signal, attempts), attempts);
    } finally {
      agentPermit?.settle(usedTokens ?? tokens);
      // A held stream keeps its deadline until its consumer releases it.
      if (!held) settle();
    }
  }

  #agentLimiter(agentId: string): RateLimiter {
    let limiter = this.#agentLimiters.get(agentId);
    if (limiter === undefined) {
      limiter = new RateLimiter(
        this.#options.agentLimit as RateLimiterOptions,
        this.#options.scheduler,
      );
      this.#agentLimiters.set(agentId, limiter);
    }
    return limiter;
  }

  #exhausted(
    model: string,
    lastError: KeelError | undefined,
    attempts: readonly RouteAttempt[],
  ): KeelError {
    const summary = attempts
      .map((item) => `${item.provider}/${item.model}: ${item.outcome}`)
      .join('; ');
    if (lastError === undefined) {
      return new KeelError('KEEL_PROVIDER_UNAVAILABLE', `no provider could serve ${model}`, {
        details: { model, attempts },
      });
    }
    return new KeelError(lastError.code, `no provider could serve ${model} (${summary})`, {
      cause: lastError,
      retryable: lastError.retryable,
      ...(lastError.retryAfterMs === undefined ? {} : { retryAfterMs: lastError.retryAfterMs }),
      details: { ...lastError.details, model, attempts },
    });
  }

  /** The caller's abort or the total deadline, whichever ended the call, else the error itself. */
  #deadlineError(
    error: unknown,
    signal: AbortSignal,
    attempts: readonly RouteAttempt[],
  ): KeelError {
    if (signal.aborted) {
      const reason = toKeelError(signal.reason, 'KEEL_ABORTED');
      if (reason.code === 'KEEL_TIMEOUT') {
        // Already wrapped with its attempts on the way out of the loop: keep them.
        if (isKeelError(error) && error.details.attempts !== undefined) return error;
        return new KeelError('KEEL_TIMEOUT', reason.message, {
          cause: error,
          details: { attempts },
        });
      }
      return reason;
    }
    return toKeelError(error, 'KEEL_PROVIDER_UNAVAILABLE');
  }
}

/** The error with every attempt in its details, so the caller can tell what was consumed. */
function withAttempts(error: KeelError, attempts: readonly RouteAttempt[]): KeelError {
  if (error.details.attempts !== undefined) return error;
  return new KeelError(error.code, error.message, {
    cause: error,
    retryable: error.retryable,
    hint: error.hint,
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    details: { ...error.details, attempts: attempts.map((attempt) => ({ ...attempt })) },
  });
}

/** What a failed call says about the provider's health. */
function healthOutcome(error: KeelError, signal: AbortSignal): CallOutcome {
  if (signal.aborted && error.code !== 'KEEL_TIMEOUT') return 'neutral';
  if (error.code === 'KEEL_RATE_LIMITED' || error.code === 'KEEL_PROVIDER_REJECTED')
    return 'neutral';
  // The model's own output (broken tool-call JSON) says nothing about the provider's health.
  if (error.details.reason === 'tool-arguments') return 'neutral';
  return error.retryable || error.code === 'KEEL_TIMEOUT' ? 'failure' : 'neutral';
}
