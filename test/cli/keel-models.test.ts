import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { childEnvironment, KEEL_BIN, runKeel, startKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

describe('keel mock-llm', () => {
  it('serves a script over the OpenAI wire format until interrupted', async () => {
    await using directory = await temporaryDirectory();
    const script = join(directory.path, 'script.yaml');
    await writeFile(script, 'turns:\n  - reply:\n      text: scripted hello\n');
    const child = spawn(process.execPath, [KEEL_BIN, 'mock-llm', '--script', script, '--json'], {
      env: childEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
    const { openAiBaseUrl } = JSON.parse(chunk.toString('utf8')) as { openAiBaseUrl: string };
    const response = await fetch(`${openAiBaseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-small', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const body = (await response.json()) as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0]?.message.content, 'scripted hello');
    child.kill('SIGINT');
    const [code] = await exited;
    assert.equal(code, 0);
  });

  it('refuses a script it cannot read, with one line saying so', async () => {
    const result = await runKeel(['mock-llm', '--script', '/nonexistent/script.yaml']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot be read .*\[KEEL_NOT_FOUND\]/);
  });
});

describe('keel budget and keel usage', () => {
  it('sets limits, shows them and resets spending, each change audited', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    assert.equal((await runKeel(['migrate', '--data-dir', dataDirectory])).code, 0);
    const empty = await runKeel(['budget', 'show', '--data-dir', dataDirectory]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /no budgets yet/);

    const set = await runKeel([
      'budget',
      'set',
      'agent:agt_1',
      '--tokens',
      '100000',
      '--cost-usd',
      '2.5',
      '--data-dir',
      dataDirectory,
      '--json',
    ]);
    assert.equal(set.code, 0, set.stderr);
    const [state] = JSON.parse(set.stdout) as { limits: Record<string, number> }[];
    assert.deepEqual(state?.limits, { tokens: 100_000, costMicros: 2_500_000 });

    const more = await runKeel([
      'budget',
      'set',
      'agent:agt_1',
      '--calls',
      '10',
      '--data-dir',
      dataDirectory,
      '--json',
    ]);
    const [merged] = JSON.parse(more.stdout) as { limits: Record<string, number> }[];
    assert.deepEqual(
      merged?.limits,
      { tokens: 100_000, costMicros: 2_500_000, calls: 10 },
      'the other limits stay',
    );
    const shown = await runKeel(['budget', 'show', 'agent:agt_1', '--data-dir', dataDirectory]);
    assert.match(shown.stdout, /agent:agt_1\s+open\s+0 \/ 100,000\s+\$0\.00 \/ \$2\.50/);

    const reset = await runKeel([
      'budget',
      'reset',
      'agent:agt_1',
      '--actor',
      'operator:ana',
      '--data-dir',
      dataDirectory,
    ]);
    assert.equal(reset.code, 0, reset.stderr);
    const audit = await runKeel(['audit', 'tail', '--data-dir', dataDirectory, '--json']);
    const kinds = audit.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { kind: string; actor: string });
    assert.ok(kinds.some((entry) => entry.kind === 'budget.limits'));
    assert.ok(
      kinds.some((entry) => entry.kind === 'budget.reset' && entry.actor === 'operator:ana'),
    );
    const verify = await runKeel(['audit', 'verify', '--data-dir', dataDirectory]);
    assert.equal(verify.code, 0, verify.stdout);
  });

  it('refuses a bad scope, a set without limits, an unknown grouping and a running node', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    assert.equal((await runKeel(['migrate', '--data-dir', dataDirectory])).code, 0);
    const badScope = await runKeel(['budget', 'reset', 'everyone', '--data-dir', dataDirectory]);
    assert.equal(badScope.code, 1);
    assert.match(badScope.stderr, /not a budget scope .*\[KEEL_INVALID_ARGUMENT\]/);
    const nothing = await runKeel(['budget', 'set', 'agent:a', '--data-dir', dataDirectory]);
    assert.equal(nothing.code, 2);
    const grouping = await runKeel(['usage', '--by', 'colour', '--data-dir', dataDirectory]);
    assert.equal(grouping.code, 2);
    await using node = await startKeel(['--data-dir', dataDirectory, '--port', '0']);
    const locked = await runKeel(['budget', 'reset', 'agent:a', '--data-dir', dataDirectory]);
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, /stop the node .*\[KEEL_DATA_DIR_LOCKED\]/);
    const readable = await runKeel(['usage', '--data-dir', dataDirectory, '--json']);
    assert.equal(readable.code, 0, readable.stderr);
    assert.deepEqual(JSON.parse(readable.stdout), []);
    await node.stop();
  });
});

describe('keel start with [models]', () => {
  const provider = (extra: string) =>
    `[models.providers.cloud]\nkind = "openai-compatible"\n${extra}\n[models.aliases]\ndefault = ["cloud/gpt-4o-mini"]\n`;

  async function startWith(config: string) {
    const directory = await temporaryDirectory();
    await chmod(directory.path, 0o700);
    await writeFile(join(directory.path, 'config.toml'), config, { mode: 0o600 });
    return directory;
  }

  it('starts with a provider and an alias configured', async () => {
    await using directory = await startWith(
      `${provider('base_url = "http://127.0.0.1:9/v1"')}[models]\nhealth_check_interval_seconds = 0\n`,
    );
    await using node = await startKeel(['--data-dir', directory.path, '--port', '0']);
    assert.equal((await node.stop()).code, 0);
  });

  for (const [name, config, code, pattern] of [
    [
      'a plain-http endpoint off loopback',
      provider('base_url = "http://10.0.0.5:8000/v1"'),
      'KEEL_TLS_REQUIRED',
      /10\.0\.0\.5:8000 is not loopback/,
    ],
    [
      'an API key secret that is not set',
      provider('base_url = "https://api.example.com/v1"\napi_key_secret = "cloud_api_key"'),
      'KEEL_CONFIG_INVALID',
      /cloud_api_key.*KEEL_SECRET_CLOUD_API_KEY/,
    ],
    [
      'an alias naming a provider that is not configured',
      `${provider('base_url = "https://api.example.com/v1"')}fallback = ["nowhere/model"]\n`,
      'KEEL_CONFIG_INVALID',
      /fallback: "nowhere\/model" is not <provider>\/<model>/,
    ],
    [
      'an OpenAI-compatible provider without a URL',
      provider(''),
      'KEEL_CONFIG_INVALID',
      /needs base_url/,
    ],
  ] as const) {
    it(`refuses ${name} in one line, writing nothing`, async () => {
      await using directory = await startWith(config);
      const result = await runKeel(['start', '--data-dir', directory.path, '--port', '0']);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`\\[${code}\\]`));
      assert.match(result.stderr, pattern);
      assert.deepEqual(await readdir(directory.path), ['config.toml']);
    });
  }
});

describe('keel doctor with [models]', () => {
  it('reports each provider: answering, not answering, and how to configure one when none is', async () => {
    await using directory = await temporaryDirectory();
    await chmod(directory.path, 0o700);
    const bare = await runKeel(['doctor', '--data-dir', directory.path, '--json']);
    const bareChecks = (JSON.parse(bare.stdout) as { checks: { area: string; detail: string }[] })
      .checks;
    assert.match(
      bareChecks.find((check) => check.area === 'models')?.detail ?? '',
      /no model alias.*\[models\]/,
    );

    const mock = spawn(process.execPath, [KEEL_BIN, 'mock-llm', '--json'], {
      env: childEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(mock, 'exit');
    try {
      const [chunk] = (await once(mock.stdout, 'data')) as [Buffer];
      const { openAiBaseUrl } = JSON.parse(chunk.toString('utf8')) as { openAiBaseUrl: string };
      await writeFile(
        join(directory.path, 'config.toml'),
        `[models.providers.up]\nkind = "openai-compatible"\nbase_url = "${openAiBaseUrl}"\n` +
          '[models.providers.down]\nkind = "ollama"\nbase_url = "http://127.0.0.1:9"\n' +
          '[models.aliases]\ndefault = ["up/mock-small", "down/llama3.1"]\n',
        { mode: 0o600 },
      );
      const result = await runKeel(['doctor', '--data-dir', directory.path, '--json']);
      const checks = (
        JSON.parse(result.stdout) as { checks: { area: string; name: string; status: string }[] }
      ).checks.filter((check) => check.area === 'models');
      assert.deepEqual(
        checks.map((check) => [check.name, check.status]),
        [
          ['up', 'ok'],
          ['down', 'warn'],
        ],
      );
    } finally {
      mock.kill('SIGINT');
      await exited;
    }
  });
});
