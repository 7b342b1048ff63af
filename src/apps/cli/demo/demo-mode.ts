import type { LoadedConfiguration } from '../../../kernel/config/load-configuration.ts';
import type { ProviderConfiguration } from '../../../kernel/config/models-configuration.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import { MockLlmServer } from '../../../services/models/mock/mock-llm-server.ts';
import { parseMockScript } from '../../../services/models/mock/mock-script.ts';

/** The model alias demo mode adds; it points at the in-process mock LLM. */
export const DEMO_ALIAS = 'demo';
const DEMO_MODEL = 'keel-demo';

/** The task `keel start --demo` runs. */
export const DEMO_TASK =
  'Plan my first hour with Keel: note two priorities in your notebook, then read the notebook back and summarise it.';

/**
 * The demo agent's manifest: the standard tool-calling loop with the notebook tools, a small
 * budget, and nothing else it may do. Unsigned: demo mode runs the node in development mode.
 */
export const DEMO_MANIFEST: JsonObject = {
  apiVersion: 'keel.dev/v1',
  id: 'demo',
  version: '1.0.0',
  description: "Keel's demo agent: plans with a (mock) LLM and keeps notes",
  program: {
    builtin: 'tool-loop',
    settings: {
      system: 'You are the Keel demo agent. Use your notebook tools, then answer briefly.',
    },
  },
  trust: 'autonomous',
  capabilities: [
    { kind: 'llm.chat', resource: DEMO_ALIAS },
    { kind: 'tool.call', resource: 'notes.*' },
    { kind: 'log' },
    { kind: 'clock.now' },
  ],
  budgets: { agent: { tokens: 1_000_000, calls: 1_000 } },
  models: { default: DEMO_ALIAS, maxOutputTokens: 1024 },
  tools: ['notes.add', 'notes.list'],
  limits: { maxSteps: 20, maxIterations: 8, concurrency: 2 },
};

const DEMO_SCRIPT = parseMockScript(
  {
    conversations: [
      {
        name: 'demo',
        match: { contains: 'Plan my first hour' },
        turns: [
          {
            reply: {
              text: 'First priority: the design.',
              toolCalls: [{ name: 'notes.add', arguments: { text: 'Read docs/agents.md' } }],
            },
          },
          {
            expect: { role: 'tool' },
            reply: {
              text: 'Second priority: an agent of my own.',
              toolCalls: [
                { name: 'notes.add', arguments: { text: 'Sign and deploy a manifest of my own' } },
              ],
            },
          },
          {
            expect: { role: 'tool' },
            reply: {
              text: 'Reading the notebook back.',
              toolCalls: [{ name: 'notes.list', arguments: {} }],
            },
          },
          {
            expect: { role: 'tool' },
            reply: {
              text: 'Your first hour: (1) read docs/agents.md, (2) sign and deploy a manifest of your own. Every step I took went through the kernel: capability check, budget, journal and audit.',
            },
          },
        ],
      },
    ],
    // Any other task is echoed back ("mock reply to: …"): the demo model knows only this one.
  },
  'demo script',
);

/**
 * Starts the mock LLM that demo mode uses, on an ephemeral loopback port.
 *
 * @example
 * ```ts
 * const server = await startDemoModelServer();
 * const loaded = withDemoModels(await loadConfiguration(), server.openAiBaseUrl);
 * ```
 */
export function startDemoModelServer(): Promise<MockLlmServer> {
  return MockLlmServer.start({ script: DEMO_SCRIPT, models: [DEMO_MODEL] });
}

/**
 * The configuration with the demo provider and alias added, and development mode on (the demo
 * manifest is unsigned). Everything else stays as configured.
 */
export function withDemoModels(loaded: LoadedConfiguration, baseUrl: string): LoadedConfiguration {
  const { configuration } = loaded;
  const provider: ProviderConfiguration = {
    name: DEMO_ALIAS,
    kind: 'openai-compatible',
    baseUrl,
    apiKeySecret: undefined,
    timeoutMs: 30_000,
    maxResponseBytes: 8 * 1024 * 1024,
    maxTokensField: 'max_tokens',
    nativeTools: true,
    textToolStyle: 'hermes',
    rateLimit: undefined,
  };
  return {
    ...loaded,
    configuration: {
      ...configuration,
      models: {
        ...configuration.models,
        providers: [
          ...configuration.models.providers.filter((existing) => existing.name !== DEMO_ALIAS),
          provider,
        ],
        aliases: {
          ...configuration.models.aliases,
          [DEMO_ALIAS]: [{ provider: DEMO_ALIAS, model: DEMO_MODEL }],
        },
      },
      agents: { ...configuration.agents, development: true },
    },
  };
}
