import {
  ModelsSection,
  toModelsConfiguration,
} from '../../src/kernel/config/models-configuration.ts';
import { SecretStore } from '../../src/kernel/config/secrets.ts';
import type { ConversationCacheLimits } from '../../src/services/models/conversation-cache.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { createModelProviders, ModelService } from '../../src/services/models/model-service.ts';
import { createKernelHarness, type KernelHarness } from './kernel-harness.ts';
import { silentLogger } from './silent-logger.ts';

export interface ModelHarness extends AsyncDisposable {
  readonly harness: KernelHarness;
  readonly mock: MockLlmServer;
  readonly models: ModelService;
  /** A running agent granted every `llm.*` call on every alias. */
  readonly agentId: string;
  /** Calls `llm.chat` on `alias` for the agent. */
  chat(
    params: Record<string, unknown>,
    options?: {
      alias?: string;
      runId?: string;
      seq?: number;
      onProgress?: (event: unknown) => void;
    },
  ): Promise<Record<string, unknown>>;
}

/**
 * A real kernel with the real model layer in front of a real mock LLM server: provider `mock`
 * (OpenAI wire format) serves alias `default` with model `mock-small`, unless `models` (the
 * `[models]` section as TOML would give it) says otherwise; `{{mock}}` in a base_url is the
 * mock's address.
 */
export async function createModelHarness(
  options: {
    readonly script?: unknown;
    readonly models?: Record<string, unknown>;
    readonly kernel?: Parameters<typeof createKernelHarness>[0];
    readonly conversations?: ConversationCacheLimits;
  } = {},
): Promise<ModelHarness> {
  const mock = await MockLlmServer.start(
    options.script === undefined ? {} : { script: parseMockScript(options.script) },
  );
  const harness = await createKernelHarness({ defaultTimeoutMs: 30_000, ...options.kernel });
  const section = JSON.parse(
    JSON.stringify(
      options.models ?? {
        providers: { mock: { kind: 'openai-compatible', base_url: '{{mock}}/v1' } },
        aliases: { default: ['mock/mock-small'] },
        retry: { base_delay_ms: 1, max_delay_ms: 5 },
        health_check_interval_seconds: 0,
      },
    ).replaceAll('{{mock}}', mock.url),
  ) as unknown;
  const configuration = toModelsConfiguration(ModelsSection.parse(section));
  const models = await ModelService.create({
    configuration,
    providers: createModelProviders(configuration, new SecretStore([])),
    budgets: harness.kernel.budgets,
    logger: silentLogger(),
    tokenizer: 'eager',
    ...(options.conversations === undefined ? {} : { conversations: options.conversations }),
  });
  for (const executor of models.executors) harness.kernel.registerExecutor(executor);
  const agent = await harness.runningAgent();
  await harness.kernel.capabilities.grant(
    agent.id,
    { kind: 'llm.*', resource: '*' },
    'operator:test',
  );
  return {
    harness,
    mock,
    models,
    agentId: agent.id,
    async chat(params, callOptions = {}) {
      const value = await harness.kernel.gate.call(
        {
          agentId: agent.id,
          ...(callOptions.runId === undefined ? {} : { runId: callOptions.runId }),
          ...(callOptions.seq === undefined ? {} : { seq: callOptions.seq }),
        },
        { kind: 'llm.chat', resource: callOptions.alias ?? 'default', params },
        callOptions.onProgress === undefined ? {} : { onProgress: callOptions.onProgress },
      );
      return value as Record<string, unknown>;
    },
    async [Symbol.asyncDispose]() {
      await models.close();
      await harness[Symbol.asyncDispose]();
      await mock.close();
    },
  };
}
