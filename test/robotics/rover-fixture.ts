import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfiguration } from '../../src/kernel/config/load-configuration.ts';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import { FINAL_RUN_STATUSES, type RunRecord } from '../../src/platform/storage/ports/run-store.ts';
import { type KeelNode, startNode } from '../../src/runtime/node.ts';
import { MockLlmServer } from '../../src/services/models/mock/mock-llm-server.ts';
import type { MockScript } from '../../src/services/models/mock/mock-script.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

/** The rover's manifest: observe, drive (capped), ask a human, think, log. */
export function roverManifest(settings: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'keel.dev/v1',
    id: 'rover',
    version: '1.0.0',
    program: { builtin: 'rover', settings },
    trust: 'autonomous',
    capabilities: [
      { kind: 'llm.chat', resource: 'brain' },
      { kind: 'hal.observe', resource: 'rover-1' },
      { kind: 'hal.drive', resource: '*', limits: { maxLinear: 5, maxAngular: 3 } },
      { kind: 'hitl', resource: 'operator' },
      { kind: 'fleet.message', resource: '*' },
      { kind: 'fleet.tasks', resource: 'board' },
      { kind: 'log' },
    ],
    models: { default: 'brain' },
  };
}

/** A node driving the sim robot in `world`, its brain the mock LLM playing `script`. */
export async function withRoverNode(
  world: JsonObject,
  script: MockScript,
  test: (node: KeelNode, mock: MockLlmServer) => Promise<void>,
  robotics = '',
): Promise<void> {
  await using directory = await temporaryDirectory('keel-rover-');
  await using mock = await MockLlmServer.start({ script });
  const worldFile = join(directory.path, 'world.json');
  await writeFile(worldFile, JSON.stringify(world));
  await writeFile(
    join(directory.path, 'config.toml'),
    [
      '[log]',
      'level = "silent"',
      '',
      '[agents]',
      'development = true',
      '',
      '[models.providers.mock]',
      'kind = "openai-compatible"',
      `base_url = "${mock.openAiBaseUrl}"`,
      'max_tokens_field = "max_tokens"',
      '',
      '[models.aliases]',
      'brain = ["mock/brain-model"]',
      '',
      '[robotics]',
      'enabled = true',
      `world_file = "${worldFile}"`,
      robotics,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const node = await startNode({
    loaded: await loadConfiguration({ dataDirectory: directory.path }),
    logger: silentLogger(),
  });
  try {
    await test(node, mock);
  } finally {
    await node.close('test done');
  }
}

export async function waitForRun(
  node: KeelNode,
  runId: string,
  limitMs = 150_000,
): Promise<RunRecord> {
  for (let waited = 0; waited < limitMs; waited += 100) {
    const current = await node.storage.runs.get(runId);
    if (current !== undefined && FINAL_RUN_STATUSES.includes(current.status)) return current;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`run ${runId} did not end within ${limitMs} ms`);
}
