import type { Logger } from '../../src/platform/observability/logger.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import type { MockScript } from '../../src/services/models/mock/mock-script.ts';
import type {
  ChatRequest,
  ModelProviderV1,
} from '../../src/services/models/provider/model-provider.ts';
import { AnthropicProvider } from '../../src/services/models/providers/anthropic-provider.ts';
import { OpenAiCompatibleProvider } from '../../src/services/models/providers/openai-compatible-provider.ts';
import { ManualScheduler } from '../../src/services/models/router/manual-scheduler.ts';
import {
  ModelRouter,
  type ModelRouterOptions,
  type RetryPolicy,
  type RouteTarget,
} from '../../src/services/models/router/model-router.ts';

/** A manual scheduler that remembers every sleep it was asked for, in order. */
export class RecordingScheduler extends ManualScheduler {
  readonly sleeps: number[] = [];

  override sleep(milliseconds: number, signal: AbortSignal): Promise<void> {
    this.sleeps.push(milliseconds);
    return super.sleep(milliseconds, signal);
  }
}

export interface RigProvider {
  readonly id: string;
  readonly kind: 'openai-compatible' | 'anthropic';
}

export interface RouterRigOptions {
  readonly logger: Logger;
  /** In alias order; each gets a mock server of its own. Default: `alpha`, `beta`. */
  readonly providers?: readonly RigProvider[];
  /** Default: `smart` → every provider with `mock-small`, in order. */
  readonly aliases?: ReadonlyMap<string, readonly RouteTarget[]>;
  readonly script?: MockScript;
  readonly retry?: Partial<RetryPolicy>;
  readonly breaker?: ModelRouterOptions['breaker'];
  readonly deadlineMs?: number;
  readonly providerLimits?: ModelRouterOptions['providerLimits'];
  readonly agentLimit?: ModelRouterOptions['agentLimit'];
}

export interface RouterRig {
  readonly router: ModelRouter;
  readonly scheduler: RecordingScheduler;
  readonly providers: ReadonlyMap<string, ModelProviderV1>;
  /** The mock server acting as one provider. */
  mock(providerId: string): MockLlmServer;
  close(): Promise<void>;
}

/**
 * For the router's tests: a {@link ModelRouter} over real adapters, each talking to a real
 * {@link MockLlmServer} of its own on loopback, with a {@link RecordingScheduler} for time.
 * Retries default to one attempt per target without backoff; tests override what they probe.
 *
 * @example
 * ```ts
 * const rig = await startRouterRig({ logger: silentLogger(), retry: { maxAttempts: 2 } });
 * t.after(() => rig.close());
 * rig.mock('alpha').injectFault({ fault: { type: 'unavailable' } });
 * await rig.router.chat('smart', chatOf('hello'), { signal });
 * ```
 */
export async function startRouterRig(options: RouterRigOptions): Promise<RouterRig> {
  const specs = options.providers ?? [
    { id: 'alpha', kind: 'openai-compatible' },
    { id: 'beta', kind: 'openai-compatible' },
  ];
  const mocks = new Map<string, MockLlmServer>();
  const providers = new Map<string, ModelProviderV1>();
  try {
    for (const spec of specs) {
      const mock = await MockLlmServer.start(
        options.script === undefined ? {} : { script: options.script },
      );
      mocks.set(spec.id, mock);
      providers.set(spec.id, providerFor(spec, mock));
    }
  } catch (error) {
    await Promise.all([...mocks.values()].map((mock) => mock.close()));
    throw error;
  }
  const scheduler = new RecordingScheduler();
  const router = new ModelRouter({
    providers,
    aliases:
      options.aliases ??
      new Map([['smart', specs.map((spec) => ({ provider: spec.id, model: 'mock-small' }))]]),
    retry: {
      maxAttempts: 1,
      baseDelayMs: 0,
      maxDelayMs: 0,
      maxRetryAfterMs: 10_000,
      ...options.retry,
    },
    deadlineMs: options.deadlineMs ?? 60_000,
    breaker: options.breaker ?? { failureThreshold: 5, cooldownMs: 30_000 },
    ...(options.providerLimits === undefined ? {} : { providerLimits: options.providerLimits }),
    ...(options.agentLimit === undefined ? {} : { agentLimit: options.agentLimit }),
    scheduler,
    random: () => 0.5,
    logger: options.logger,
  });
  return {
    router,
    scheduler,
    providers,
    mock(providerId) {
      const mock = mocks.get(providerId);
      if (mock === undefined) throw new Error(`the rig has no provider ${providerId}`);
      return mock;
    },
    async close() {
      await Promise.all([...mocks.values()].map((mock) => mock.close()));
    },
  };
}

/** A real adapter of the given kind, pointed at a mock server. */
export function providerFor(spec: RigProvider, mock: MockLlmServer): ModelProviderV1 {
  const common = { providerId: spec.id, timeoutMs: 30_000, maxResponseBytes: 1_048_576 };
  return spec.kind === 'anthropic'
    ? new AnthropicProvider({ ...common, baseUrl: mock.url, apiKey: 'test-key' })
    : new OpenAiCompatibleProvider({ ...common, baseUrl: mock.openAiBaseUrl });
}

/** A one-message chat request, without the model (the router fills it in). */
export function chatOf(text: string): Omit<ChatRequest, 'model'> {
  return { messages: [{ role: 'user', content: text }] };
}

/** Waits, a few milliseconds at a time, until `condition` holds; fails after a bound. */
export async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let round = 0; round < 2_000; round += 1) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`gave up waiting until ${what}`);
}
