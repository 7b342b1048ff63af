import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import {
  compareVersions,
  MAX_MANIFEST_BYTES,
  manifestFormatOf,
  parseAgentManifest,
  parseManifestText,
  trustLevelOf,
} from './agent-manifest.ts';

const MINIMAL = {
  apiVersion: 'keel.dev/v1',
  id: 'coder',
  version: '1.2.0',
  program: { builtin: 'react-agent' },
  trust: 'supervised',
  capabilities: [{ kind: 'llm.chat' }],
} as const;

/** The minimal manifest with one top-level field replaced (or removed, with `undefined`). */
function withField(field: string, value: unknown): Record<string, unknown> {
  const manifest: Record<string, unknown> = { ...MINIMAL, [field]: value };
  if (value === undefined) delete manifest[field];
  return manifest;
}

/** Asserts that parsing throws KEEL_MANIFEST_INVALID naming `field`; returns the message. */
function rejects(value: unknown, field: string): string {
  try {
    parseAgentManifest(value);
  } catch (error) {
    assert.ok(isKeelError(error), `expected a KeelError, got ${String(error)}`);
    assert.equal(error.code, 'KEEL_MANIFEST_INVALID', error.message);
    assert.equal(error.details.field, field, error.message);
    assert.ok(error.message.startsWith(`manifest ${field}: `), error.message);
    return error.message;
  }
  assert.fail(`expected the manifest to be refused at ${field}`);
}

describe('parseAgentManifest', () => {
  it('accepts a minimal manifest and fills in every default', () => {
    const manifest = parseAgentManifest(MINIMAL);
    assert.deepEqual(manifest.program, { builtin: 'react-agent', settings: {} });
    assert.deepEqual(manifest.capabilities, [{ kind: 'llm.chat', resource: '*', limits: {} }]);
    assert.deepEqual(manifest.tools, []);
    assert.deepEqual(manifest.mcpServers, []);
    assert.deepEqual(manifest.skills, []);
    assert.deepEqual(manifest.limits, {
      maxSteps: 50,
      maxIterations: 20,
      concurrency: 4,
      memoryMb: 256,
      maxAttempts: 5,
    });
    assert.equal(manifest.schedule, undefined);
    assert.equal(manifest.budgets, undefined);
  });

  it('accepts a complete manifest and keeps what it says', () => {
    const manifest = parseAgentManifest({
      ...MINIMAL,
      description: 'fixes failing tests',
      program: { module: './agents/coder.ts', settings: { style: { tabs: false } } },
      trust: 'semi-autonomous',
      budgets: { agent: { tokens: 1_000_000, costMicros: 5_000_000 }, run: { calls: 200 } },
      models: { default: 'openai/gpt-small', maxOutputTokens: 4096 },
      schedule: [
        { every: '30m', task: { prompt: 'check the build' } },
        { cron: '0 9 * * 1-5', task: { prompt: 'triage', input: { label: 'bug' } }, priority: 2 },
      ],
      tools: ['read_file', 'shell'],
      mcpServers: ['github'],
      skills: [
        {
          id: 'summarise',
          description: 'summarise a file',
          inputSchema: { type: 'object', properties: { path: { type: 'string' } } },
        },
      ],
      limits: { maxSteps: 10 },
    });
    assert.equal(manifest.program.settings.style !== undefined, true);
    assert.equal(manifest.schedule?.[0]?.priority, 5);
    assert.equal(manifest.schedule?.[1]?.priority, 2);
    assert.equal(manifest.limits.maxSteps, 10);
    assert.equal(manifest.limits.concurrency, 4);
    assert.equal(manifest.budgets?.run?.calls, 200);
  });

  it('parses its own output to the same manifest', () => {
    const once = parseAgentManifest(MINIMAL);
    assert.deepEqual(parseAgentManifest(JSON.parse(JSON.stringify(once))), once);
  });

  const rejections: ReadonlyArray<readonly [string, unknown, string]> = [
    ['a wrong apiVersion', withField('apiVersion', 'keel.dev/v2'), 'apiVersion'],
    ['an id with capitals', withField('id', 'Coder'), 'id'],
    ['an id starting with a digit', withField('id', '1coder'), 'id'],
    ['an id longer than 63', withField('id', `a${'b'.repeat(63)}`), 'id'],
    ['a version without a patch', withField('version', '1.2'), 'version'],
    ['a version with a leading zero', withField('version', '01.2.3'), 'version'],
    ['a version with build metadata', withField('version', '1.2.3+build'), 'version'],
    ['a description over 500', withField('description', 'x'.repeat(501)), 'description'],
    ['a missing program', withField('program', undefined), 'program'],
    [
      'a program with both kinds',
      withField('program', { builtin: 'a', module: 'b.ts' }),
      'program',
    ],
    ['a bad builtin name', withField('program', { builtin: 'React' }), 'program.builtin'],
    ['a module that is not a script', withField('program', { module: 'a.py' }), 'program.module'],
    [
      'a module given as a URL',
      withField('program', { module: 'https://x/a.ts' }),
      'program.module',
    ],
    ['a module path with NUL', withField('program', { module: 'a\u0000.ts' }), 'program.module'],
    [
      'a non-JSON setting',
      withField('program', { builtin: 'a', settings: { x: Number.NaN } }),
      'program.settings.x',
    ],
    ['an unknown trust', withField('trust', 'total'), 'trust'],
    ['a missing capabilities list', withField('capabilities', undefined), 'capabilities'],
    ['a bad capability kind', withField('capabilities', [{ kind: '*' }]), 'capabilities.0.kind'],
    [
      'too many capabilities',
      withField('capabilities', Array(257).fill({ kind: 'llm.chat' })),
      'capabilities',
    ],
    ['a zero token budget', withField('budgets', { agent: { tokens: 0 } }), 'budgets.agent.tokens'],
    [
      'a fractional budget',
      withField('budgets', { run: { costMicros: 1.5 } }),
      'budgets.run.costMicros',
    ],
    ['an unknown budget scope', withField('budgets', { node: {} }), 'budgets.node'],
    ['a bad model alias', withField('models', { default: 'a b' }), 'models.default'],
    [
      'too many output tokens',
      withField('models', { maxOutputTokens: 1_000_001 }),
      'models.maxOutputTokens',
    ],
    [
      'a bad duration',
      withField('schedule', [{ every: '5 minutes', task: { prompt: 'x' } }]),
      'schedule.0.every',
    ],
    [
      'an interval of zero',
      withField('schedule', [{ every: '0s', task: { prompt: 'x' } }]),
      'schedule.0.every',
    ],
    [
      'a cron expression out of range',
      withField('schedule', [{ cron: '61 25 * * FOO', task: { prompt: 'x' } }]),
      'schedule.0.cron',
    ],
    [
      'a schedule with both kinds',
      withField('schedule', [{ every: '5m', cron: '* * * * *', task: { prompt: 'x' } }]),
      'schedule.0',
    ],
    ['a schedule without a task', withField('schedule', [{ every: '5m' }]), 'schedule.0.task'],
    [
      'a priority of 10',
      withField('schedule', [{ every: '5m', task: { prompt: 'x' }, priority: 10 }]),
      'schedule.0.priority',
    ],
    [
      'a prompt over 64 KiB',
      withField('schedule', [{ cron: '* * * * *', task: { prompt: 'é'.repeat(40_000) } }]),
      'schedule.0.task.prompt',
    ],
    ['a bad tool name', withField('tools', ['read file']), 'tools.0'],
    ['a duplicate tool', withField('tools', ['shell', 'shell']), 'tools.1'],
    ['a bad MCP server name', withField('mcpServers', ['GitHub']), 'mcpServers.0'],
    [
      'a skill schema that is not an object',
      withField('skills', [{ id: 's', description: 'd', inputSchema: { type: 'string' } }]),
      'skills.0.inputSchema',
    ],
    ['a maxSteps of 0', withField('limits', { maxSteps: 0 }), 'limits.maxSteps'],
    ['a memory of 16 MB', withField('limits', { memoryMb: 16 }), 'limits.memoryMb'],
    ['a concurrency of 65', withField('limits', { concurrency: 65 }), 'limits.concurrency'],
    ['an unknown top-level field', withField('owner', 'ana'), 'owner'],
    ['an unknown nested field', withField('limits', { maxStep: 3 }), 'limits.maxStep'],
    [
      'a __proto__ key in settings',
      withField('program', JSON.parse('{"builtin":"a","settings":{"__proto__":{"x":1}}}')),
      'program.settings.__proto__',
    ],
  ];
  for (const [what, value, field] of rejections) {
    it(`refuses ${what}, naming ${field}`, () => {
      rejects(value, field);
    });
  }

  it('refuses a value that is not an object, naming the top level', () => {
    rejects('coder', '(top level)');
    rejects(null, '(top level)');
  });

  it('says a program is either a builtin or a module', () => {
    const message = rejects(withField('program', {}), 'program');
    assert.match(message, /either \{ builtin: <name> \} or \{ module: <path> \}/);
  });
});

describe('parseManifestText', () => {
  const yaml = [
    'apiVersion: keel.dev/v1',
    'id: coder',
    'version: 1.2.0',
    'program:',
    '  builtin: react-agent',
    'trust: supervised',
    'capabilities:',
    '  - kind: llm.chat',
    '',
  ].join('\n');

  it('reads the same manifest from YAML and from JSON', () => {
    assert.deepEqual(
      parseAgentManifest(parseManifestText(yaml, 'yaml')),
      parseAgentManifest(parseManifestText(JSON.stringify(MINIMAL), 'json')),
    );
  });

  it('refuses text that is not JSON or not YAML', () => {
    for (const [text, format] of [
      ['{"id": ', 'json'],
      ['id: [unclosed', 'yaml'],
      ['id: a\nid: b\n', 'yaml'],
    ] as const) {
      assert.throws(
        () => parseManifestText(text, format),
        (error: unknown) => isKeelError(error) && error.code === 'KEEL_MANIFEST_INVALID',
      );
    }
  });

  it('refuses YAML that expands too many aliases', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let level = 1; level <= 8; level += 1) {
      const previous = String.fromCharCode(96 + level);
      const next = String.fromCharCode(97 + level);
      lines.push(`${next}: &${next} [${Array(10).fill(`*${previous}`).join(', ')}]`);
    }
    assert.throws(
      () => parseManifestText(lines.join('\n'), 'yaml'),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_MANIFEST_INVALID',
    );
  });

  it('refuses YAML that stands for more than 1 MiB once its aliases are expanded', () => {
    const text = `${yaml}program_notes:\n  big: &big "${'x'.repeat(100_000)}"\n  copies: [${Array(20).fill('*big').join(', ')}]\n`;
    assert.ok(Buffer.byteLength(text) < MAX_MANIFEST_BYTES);
    assert.throws(
      () => parseManifestText(text, 'yaml'),
      (error: unknown) =>
        isKeelError(error) &&
        error.code === 'KEEL_PAYLOAD_TOO_LARGE' &&
        /once its YAML aliases are expanded/.test(error.message),
    );
  });

  it('knows a manifest file by its extension and refuses any other', () => {
    assert.equal(manifestFormatOf('agents/coder.yaml'), 'yaml');
    assert.equal(manifestFormatOf('agents/coder.YML'), 'yaml');
    assert.equal(manifestFormatOf('agents/coder.signed.json'), 'json');
    for (const path of ['agents/coder.toml', 'agents/coder', '/dev/zero']) {
      assert.throws(
        () => manifestFormatOf(path),
        (error: unknown) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
        path,
      );
    }
  });

  it('refuses text over 1 MiB', () => {
    assert.throws(
      () => parseManifestText(`"${'x'.repeat(MAX_MANIFEST_BYTES)}"`, 'json'),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_PAYLOAD_TOO_LARGE',
    );
  });
});

describe('trustLevelOf', () => {
  it('maps manifest trust to kernel trust levels', () => {
    assert.equal(trustLevelOf('supervised'), 'untrusted');
    assert.equal(trustLevelOf('semi-autonomous'), 'standard');
    assert.equal(trustLevelOf('autonomous'), 'trusted');
  });
});

describe('compareVersions', () => {
  // Each version is older than the next: semver.org's precedence example, and more.
  const ascending = [
    '0.0.1',
    '0.1.0',
    '0.9.0',
    '0.10.0',
    '1.0.0-0',
    '1.0.0-1',
    '1.0.0-2',
    '1.0.0-10',
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-alpha.beta',
    '1.0.0-beta',
    '1.0.0-beta.2',
    '1.0.0-beta.11',
    '1.0.0-rc.1',
    '1.0.0',
    '1.0.1',
    '1.2.0',
    '1.10.0',
    '2.0.0',
    '10.0.0',
    '99999999999999999999.0.0',
  ];

  it('orders every pair by semver precedence', () => {
    for (const [leftIndex, left] of ascending.entries()) {
      for (const [rightIndex, right] of ascending.entries()) {
        const expected = Math.sign(leftIndex - rightIndex);
        assert.equal(compareVersions(left, right), expected, `${left} vs ${right}`);
      }
    }
  });

  it('treats uppercase prerelease identifiers as lower than lowercase, in ASCII order', () => {
    assert.equal(compareVersions('1.0.0-Beta', '1.0.0-alpha'), -1);
  });

  it('refuses a string that is not a version', () => {
    assert.throws(
      () => compareVersions('1.0', '1.0.0'),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
    );
  });
});
