import { z } from 'zod';
import { KeelError } from '../../platform/errors/keel-error.ts';

const NAME = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ and -');

const RateLimitSection = z.strictObject({
  requests_per_minute: z.number().min(1).max(1_000_000).optional(),
  tokens_per_minute: z.number().min(1).max(1_000_000_000).optional(),
  mode: z.enum(['queue', 'refuse']).default('queue'),
  max_queue_ms: z.number().int().min(0).max(600_000).default(30_000),
});

const ProviderSection = z.strictObject({
  kind: z.enum(['openai-compatible', 'anthropic', 'ollama']),
  /** Defaults per kind: Anthropic's API, Ollama on 127.0.0.1:11434; required for openai-compatible. */
  base_url: z.string().min(1).max(2048).optional(),
  /** The name of the secret (secrets.toml or KEEL_SECRET_<NAME>) that holds the API key. */
  api_key_secret: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,63}$/)
    .optional(),
  timeout_ms: z.number().int().min(100).max(3_600_000).default(120_000),
  max_response_bytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .default(8 * 1024 * 1024),
  max_tokens_field: z.enum(['max_tokens', 'max_completion_tokens']).default('max_tokens'),
  /** false: the model does not call tools natively; tool calls are parsed from its text. */
  native_tools: z.boolean().default(true),
  text_tool_style: z.enum(['hermes', 'llama', 'qwen-xml', 'fenced-json']).default('hermes'),
  rate_limit: RateLimitSection.optional(),
});

/**
 * The `[models]` section of `config.toml`: providers, aliases with their fallback chains, retry,
 * breaker and rate-limit policy, and the price table.
 */
export const ModelsSection = z.strictObject({
  providers: z.record(NAME, ProviderSection).default({}),
  /** alias → ordered `provider/model` targets; the first that answers serves the call. */
  aliases: z.record(NAME, z.array(z.string().min(3).max(300)).min(1).max(16)).default({}),
  /** A price table file replacing the bundled one. */
  price_table: z.string().min(1).max(4096).optional(),
  deadline_ms: z.number().int().min(100).max(3_600_000).default(120_000),
  health_check_interval_seconds: z.number().int().min(0).max(86_400).default(60),
  /** How much the pre-call token estimate is rounded up (other tokenizers count more). */
  estimate_margin: z.number().min(1).max(4).default(1.25),
  default_max_output_tokens: z.number().int().min(1).max(1_000_000).default(4_096),
  max_output_tokens: z.number().int().min(1).max(1_000_000).default(65_536),
  retry: z
    .strictObject({
      max_attempts: z.number().int().min(1).max(10).default(2),
      base_delay_ms: z.number().int().min(0).max(60_000).default(500),
      max_delay_ms: z.number().int().min(0).max(600_000).default(20_000),
      max_retry_after_ms: z.number().int().min(0).max(3_600_000).default(30_000),
    })
    .prefault({}),
  breaker: z
    .strictObject({
      failure_threshold: z.number().int().min(1).max(1_000).default(5),
      cooldown_seconds: z.number().min(0.01).max(86_400).default(30),
    })
    .prefault({}),
  /** Applied to each agent separately. */
  agent_rate_limit: RateLimitSection.optional(),
});

export type ModelsSectionFile = z.output<typeof ModelsSection>;

export interface RateLimitConfiguration {
  readonly requestsPerMinute?: number;
  readonly tokensPerMinute?: number;
  readonly mode: 'queue' | 'refuse';
  readonly maxQueueMs: number;
}

export interface ProviderConfiguration {
  readonly name: string;
  readonly kind: 'openai-compatible' | 'anthropic' | 'ollama';
  readonly baseUrl: string | undefined;
  readonly apiKeySecret: string | undefined;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxTokensField: 'max_tokens' | 'max_completion_tokens';
  readonly nativeTools: boolean;
  readonly textToolStyle: 'hermes' | 'llama' | 'qwen-xml' | 'fenced-json';
  readonly rateLimit: RateLimitConfiguration | undefined;
}

/** The validated models configuration the composition root injects. */
export interface ModelsConfiguration {
  readonly providers: readonly ProviderConfiguration[];
  readonly aliases: Readonly<
    Record<string, readonly { readonly provider: string; readonly model: string }[]>
  >;
  readonly priceTable: string | undefined;
  readonly deadlineMs: number;
  readonly healthCheckIntervalMs: number;
  readonly estimateMargin: number;
  readonly defaultMaxOutputTokens: number;
  readonly maxOutputTokens: number;
  readonly retry: {
    readonly maxAttempts: number;
    readonly baseDelayMs: number;
    readonly maxDelayMs: number;
    readonly maxRetryAfterMs: number;
  };
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  readonly agentRateLimit: RateLimitConfiguration | undefined;
}

function rateLimit(
  section: z.output<typeof RateLimitSection> | undefined,
): RateLimitConfiguration | undefined {
  if (section === undefined) return undefined;
  return {
    ...(section.requests_per_minute === undefined
      ? {}
      : { requestsPerMinute: section.requests_per_minute }),
    ...(section.tokens_per_minute === undefined
      ? {}
      : { tokensPerMinute: section.tokens_per_minute }),
    mode: section.mode,
    maxQueueMs: section.max_queue_ms,
  };
}

/**
 * Checks what the schema cannot (aliases name configured providers, an OpenAI-compatible
 * provider has a URL) and converts `[models]` to its camelCase form.
 *
 * @example
 * ```ts
 * const models = toModelsConfiguration(file.models);
 * ```
 */
export function toModelsConfiguration(section: ModelsSectionFile): ModelsConfiguration {
  const providers = Object.entries(section.providers).map(([name, provider]) => {
    if (provider.kind === 'openai-compatible' && provider.base_url === undefined) {
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `[models.providers.${name}] is openai-compatible and needs base_url (e.g. https://api.openai.com/v1)`,
      );
    }
    return {
      name,
      kind: provider.kind,
      baseUrl: provider.base_url,
      apiKeySecret: provider.api_key_secret,
      timeoutMs: provider.timeout_ms,
      maxResponseBytes: provider.max_response_bytes,
      maxTokensField: provider.max_tokens_field,
      nativeTools: provider.native_tools,
      textToolStyle: provider.text_tool_style,
      rateLimit: rateLimit(provider.rate_limit),
    };
  });
  const aliases: Record<string, { provider: string; model: string }[]> = {};
  for (const [alias, targets] of Object.entries(section.aliases)) {
    aliases[alias] = targets.map((target) => {
      const slash = target.indexOf('/');
      const provider = target.slice(0, Math.max(0, slash));
      if (slash <= 0 || slash === target.length - 1 || section.providers[provider] === undefined) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `[models.aliases] ${alias}: ${JSON.stringify(target)} is not <provider>/<model> with a configured provider`,
        );
      }
      return { provider, model: target.slice(slash + 1) };
    });
  }
  return {
    providers,
    aliases,
    priceTable: section.price_table,
    deadlineMs: section.deadline_ms,
    healthCheckIntervalMs: section.health_check_interval_seconds * 1000,
    estimateMargin: section.estimate_margin,
    defaultMaxOutputTokens: section.default_max_output_tokens,
    maxOutputTokens: section.max_output_tokens,
    retry: {
      maxAttempts: section.retry.max_attempts,
      baseDelayMs: section.retry.base_delay_ms,
      maxDelayMs: section.retry.max_delay_ms,
      maxRetryAfterMs: section.retry.max_retry_after_ms,
    },
    breaker: {
      failureThreshold: section.breaker.failure_threshold,
      cooldownMs: section.breaker.cooldown_seconds * 1000,
    },
    agentRateLimit: rateLimit(section.agent_rate_limit),
  };
}
