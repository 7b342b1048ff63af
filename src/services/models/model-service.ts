import type { BudgetLedger } from '../../kernel/budgets/budget-ledger.ts';
import type {
  ModelsConfiguration,
  ProviderConfiguration,
} from '../../kernel/config/models-configuration.ts';
import type { SecretStore } from '../../kernel/config/secrets.ts';
import type { SyscallExecutor } from '../../kernel/gate/syscall.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import { loadPriceTable, type PriceTable } from './accounting/price-table.ts';
import { deferredTokenEstimator, type TokenEstimator } from './accounting/token-estimator.ts';
import {
  ConversationCache,
  type ConversationCacheLimits,
  DEFAULT_CONVERSATION_LIMITS,
} from './conversation-cache.ts';
import { createLlmExecutors } from './llm-executors.ts';
import type { ModelProviderV1 } from './provider/model-provider.ts';
import { AnthropicProvider } from './providers/anthropic-provider.ts';
import { OllamaProvider } from './providers/ollama-provider.ts';
import { OpenAiCompatibleProvider } from './providers/openai-compatible-provider.ts';
import { ModelRouter, type RouteTarget } from './router/model-router.ts';
import { ProviderHealthMonitor } from './router/provider-health-monitor.ts';
import type { RateLimiterOptions } from './router/rate-limiter.ts';
import { type Scheduler, systemScheduler } from './router/scheduler.ts';
import { withTextToolCalls } from './tool-calls/text-tool-calling-provider.ts';

export interface ModelServiceOptions {
  readonly configuration: ModelsConfiguration;
  /** The providers, built (so validated) by `createModelProviders` before anything is written. */
  readonly providers: ReadonlyMap<string, ModelProviderV1>;
  readonly budgets: BudgetLedger;
  readonly logger: Logger;
  readonly scheduler?: Scheduler;
  readonly random?: () => number;
  /** `eager` loads the tokenizer before `create` resolves (tests); default after `start`. */
  readonly tokenizer?: 'eager' | 'deferred';
  /** How much of runs' conversations is kept for `continues` (default 64 MiB, 4,096 runs). */
  readonly conversations?: ConversationCacheLimits;
}

const TOKENIZER_DELAY_MS = 500;

/**
 * The model layer of a node: providers built from `[models]`, the router over them, the price
 * table and tokenizer, the `llm.chat` / `llm.embed` executors to register with the kernel,
 * and the periodic health checks. The composition root creates it and closes it.
 *
 * @example
 * ```ts
 * const models = await ModelService.create({ configuration: configuration.models, secrets, budgets: kernel.budgets, logger });
 * for (const executor of models.executors) kernel.registerExecutor(executor);
 * models.start();
 * ```
 */
export class ModelService {
  readonly router: ModelRouter;
  readonly providers: ReadonlyMap<string, ModelProviderV1>;
  readonly prices: PriceTable;
  readonly estimator: TokenEstimator;
  readonly executors: readonly SyscallExecutor[];
  readonly health: ProviderHealthMonitor;
  readonly #conversations: ConversationCache;
  #loadTokenizer: () => Promise<unknown> = () => Promise.resolve();
  #tokenizer: Promise<unknown> = Promise.resolve();
  #tokenizerTimer: NodeJS.Timeout | undefined;

  private constructor(options: ModelServiceOptions, prices: PriceTable, estimator: TokenEstimator) {
    const { configuration, logger } = options;
    const providers = options.providers;
    const providerLimits = new Map<string, RateLimiterOptions>();
    for (const provider of configuration.providers) {
      if (provider.rateLimit !== undefined) providerLimits.set(provider.name, provider.rateLimit);
    }
    this.providers = providers;
    this.prices = prices;
    this.estimator = estimator;
    this.#conversations = new ConversationCache(
      options.conversations ?? DEFAULT_CONVERSATION_LIMITS,
    );
    this.router = new ModelRouter({
      providers,
      aliases: new Map(Object.entries(configuration.aliases)),
      retry: configuration.retry,
      deadlineMs: configuration.deadlineMs,
      breaker: configuration.breaker,
      providerLimits,
      ...(configuration.agentRateLimit === undefined
        ? {}
        : { agentLimit: configuration.agentRateLimit }),
      scheduler: options.scheduler ?? systemScheduler,
      ...(options.random === undefined ? {} : { random: options.random }),
      logger,
    });
    this.executors = createLlmExecutors({
      router: this.router,
      prices,
      estimator,
      budgets: options.budgets,
      providerKinds: new Map(
        configuration.providers.map((provider) => [provider.name, provider.kind]),
      ),
      defaultMaxOutputTokens: configuration.defaultMaxOutputTokens,
      maxOutputTokens: configuration.maxOutputTokens,
      deadlineMs: configuration.deadlineMs,
      conversations: this.#conversations,
      onUnpriced: (target: RouteTarget) =>
        logger.warn(
          { provider: target.provider, model: target.model, priceTable: prices.version },
          `model ${target.provider}/${target.model} has no price: its cost is recorded as unknown`,
        ),
    });
    this.health = new ProviderHealthMonitor(providers, this.router.breakers(), {
      intervalMs: configuration.healthCheckIntervalMs,
      logger,
    });
  }

  /** Runs whose conversation is held for their next chat, and its bytes. */
  get heldConversations(): { readonly runs: number; readonly bytes: number } {
    return this.#conversations.stats;
  }

  /** Lets an ended run's conversation go: nothing will continue it. */
  forgetRun(runId: string): void {
    this.#conversations.forget(runId);
  }

  static async create(options: ModelServiceOptions): Promise<ModelService> {
    const prices =
      options.configuration.priceTable === undefined
        ? await loadPriceTable()
        : await loadPriceTable(options.configuration.priceTable);
    const tokenizer = deferredTokenEstimator({ margin: options.configuration.estimateMargin });
    const service = new ModelService(options, prices, tokenizer.estimator);
    service.#loadTokenizer = () =>
      tokenizer
        .load()
        .catch((error: unknown) =>
          options.logger.warn(
            { err: error },
            'the tokenizer did not load: token estimates use byte counts (higher, never lower)',
          ),
        );
    if (options.tokenizer === 'eager') await service.#loadTokenizer();
    return service;
  }

  /** Starts the periodic health checks (when configured and there are providers). */
  start(): void {
    if (this.providers.size === 0) return;
    this.health.start();
    // The tokenizer's tables take about 100 ms of main-thread work to load: after start-up,
    // not in its way. Until then estimates use byte counts, which are never low.
    this.#tokenizerTimer = setTimeout(() => {
      this.#tokenizer = this.#loadTokenizer();
    }, TOKENIZER_DELAY_MS);
    this.#tokenizerTimer.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.#tokenizerTimer);
    await this.health.close();
    await this.#tokenizer;
  }
}

/**
 * Builds the configured providers, which validates them: an endpoint that is not loopback must
 * be `https:` (`KEEL_TLS_REQUIRED`), and a named API key secret must exist
 * (`KEEL_CONFIG_INVALID` saying where to put it). Nothing is contacted.
 *
 * @example
 * ```ts
 * const providers = createModelProviders(configuration.models, loaded.secrets);
 * ```
 */
export function createModelProviders(
  configuration: ModelsConfiguration,
  secrets: SecretStore,
): ReadonlyMap<string, ModelProviderV1> {
  return new Map(
    configuration.providers.map((provider) => [provider.name, createProvider(provider, secrets)]),
  );
}

function createProvider(
  configuration: ProviderConfiguration,
  secrets: SecretStore,
): ModelProviderV1 {
  let apiKey: string | undefined;
  if (configuration.apiKeySecret !== undefined) {
    const secret = secrets.get(configuration.apiKeySecret);
    if (secret === undefined) {
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `provider ${configuration.name} needs the secret ${configuration.apiKeySecret}, which is not set`,
        {
          hint: `put ${configuration.apiKeySecret} = "…" in secrets.toml, or set KEEL_SECRET_${configuration.apiKeySecret.toUpperCase()}`,
        },
      );
    }
    apiKey = secret.reveal();
  }
  const common = {
    providerId: configuration.name,
    timeoutMs: configuration.timeoutMs,
    maxResponseBytes: configuration.maxResponseBytes,
  };
  let provider: ModelProviderV1;
  switch (configuration.kind) {
    case 'openai-compatible':
      provider = new OpenAiCompatibleProvider({
        ...common,
        baseUrl: configuration.baseUrl as string,
        ...(apiKey === undefined ? {} : { apiKey }),
        maxTokensField: configuration.maxTokensField,
      });
      break;
    case 'anthropic':
      provider = new AnthropicProvider({
        ...common,
        ...(configuration.baseUrl === undefined ? {} : { baseUrl: configuration.baseUrl }),
        ...(apiKey === undefined ? {} : { apiKey }),
      });
      break;
    case 'ollama':
      provider = new OllamaProvider({
        ...common,
        ...(configuration.baseUrl === undefined ? {} : { baseUrl: configuration.baseUrl }),
      });
      break;
  }
  return configuration.nativeTools
    ? provider
    : withTextToolCalls(provider, configuration.textToolStyle);
}
