import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { throwsWithCode } from '../../../test/support/assertions.ts';
import { compileGrant, matchCapability, parseCapabilityGrant } from './capability-grant.ts';

const NOW = Date.UTC(2026, 0, 1);

function grants(...values: Array<{ id?: string; expiresAt?: number | null; grant: unknown }>) {
  return values.map((value, index) =>
    compileGrant(value.id ?? `grt_${index}`, value.grant, value.expiresAt ?? null),
  );
}

describe('capability grants', () => {
  it('parses the documented examples', () => {
    assert.deepEqual(
      parseCapabilityGrant({
        kind: 'tool.call',
        resource: 'shell',
        limits: { commands: ['npm test', 'git *'] },
      }),
      {
        kind: 'tool.call',
        resource: 'shell',
        limits: { commands: ['npm test', 'git *'] },
      },
    );
    assert.equal(
      parseCapabilityGrant({ kind: 'net.fetch', limits: { domains: ['*.example.org'] } }).resource,
      '*',
    );
    assert.ok(parseCapabilityGrant({ kind: 'fs.write', limits: { paths: ['workspace/**'] } }));
    assert.ok(
      parseCapabilityGrant({ kind: 'hal.drive', limits: { maxLinear: 0.5, maxAngular: 1.0 } }),
    );
    assert.ok(parseCapabilityGrant({ kind: 'memory.*' }));
  });

  it('refuses malformed grants with the field named', () => {
    const unknownLimit = throwsWithCode(
      () => parseCapabilityGrant({ kind: 'tool.call', limits: { comands: ['x'] } }),
      'KEEL_CAPABILITY_INVALID',
    );
    assert.match(unknownLimit.message, /limits/);
    throwsWithCode(() => parseCapabilityGrant({ kind: '*' }), 'KEEL_CAPABILITY_INVALID');
    throwsWithCode(() => parseCapabilityGrant({ kind: 'Tool Call' }), 'KEEL_CAPABILITY_INVALID');
    throwsWithCode(
      () => parseCapabilityGrant({ kind: 'hal.drive', limits: { maxLinear: -1 } }),
      'KEEL_CAPABILITY_INVALID',
    );
    throwsWithCode(
      () => parseCapabilityGrant({ kind: 'tool.call', limits: { commands: [] } }),
      'KEEL_CAPABILITY_INVALID',
    );
    throwsWithCode(
      () => parseCapabilityGrant({ kind: 'tool.call', extra: true }),
      'KEEL_CAPABILITY_INVALID',
    );
    throwsWithCode(() => parseCapabilityGrant('tool.call'), 'KEEL_CAPABILITY_INVALID');
  });
});

describe('matchCapability', () => {
  const shell = {
    kind: 'tool.call',
    resource: 'shell',
    limits: { commands: ['npm test', 'git *'] },
  };

  it('denies everything without grants', () => {
    const decision = matchCapability([], { kind: 'clock.now', resource: '', params: {} }, NOW);
    assert.deepEqual(decision, {
      allowed: false,
      reason: 'no capability grant for clock.now',
      closestGrantId: null,
    });
  });

  it('allows an intent within a grant and names the grant', () => {
    const decision = matchCapability(
      grants({ id: 'grt_shell', grant: shell }),
      { kind: 'tool.call', resource: 'shell', params: { command: 'git status' } },
      NOW,
    );
    assert.deepEqual(decision, { allowed: true, grantId: 'grt_shell' });
  });

  it('denies a command outside the grant and says which grant came closest', () => {
    const decision = matchCapability(
      grants({ id: 'grt_shell', grant: shell }),
      { kind: 'tool.call', resource: 'shell', params: { command: 'rm -rf /' } },
      NOW,
    );
    assert.equal(decision.allowed, false);
    assert.ok(
      !decision.allowed &&
        decision.closestGrantId === 'grt_shell' &&
        /outside the granted commands/.test(decision.reason),
    );
  });

  it('denies when the limited parameter is missing', () => {
    const decision = matchCapability(
      grants({ grant: shell }),
      { kind: 'tool.call', resource: 'shell', params: {} },
      NOW,
    );
    assert.ok(!decision.allowed && /required/.test(decision.reason));
  });

  it('denies another resource or kind', () => {
    const compiled = grants({ grant: shell });
    assert.equal(
      matchCapability(
        compiled,
        { kind: 'tool.call', resource: 'git', params: { command: 'git status' } },
        NOW,
      ).allowed,
      false,
    );
    assert.equal(
      matchCapability(
        compiled,
        { kind: 'tool.list', resource: 'shell', params: { command: 'git status' } },
        NOW,
      ).allowed,
      false,
    );
  });

  it('ignores expired grants', () => {
    const compiled = grants({ grant: { kind: 'clock.now' }, expiresAt: NOW });
    assert.equal(
      matchCapability(compiled, { kind: 'clock.now', resource: '', params: {} }, NOW).allowed,
      false,
    );
    assert.equal(
      matchCapability(compiled, { kind: 'clock.now', resource: '', params: {} }, NOW - 1).allowed,
      true,
    );
  });

  it('matches kind prefixes', () => {
    const compiled = grants({ grant: { kind: 'memory.*', resource: 'notes' } });
    assert.equal(
      matchCapability(compiled, { kind: 'memory.write', resource: 'notes', params: {} }, NOW)
        .allowed,
      true,
    );
    assert.equal(
      matchCapability(compiled, { kind: 'memoryx', resource: 'notes', params: {} }, NOW).allowed,
      false,
    );
  });

  it('bounds drive speeds in both directions', () => {
    const compiled = grants({
      grant: { kind: 'hal.drive', limits: { maxLinear: 0.5, maxAngular: 1.0 } },
    });
    const drive = (linear: unknown, angular: unknown) =>
      matchCapability(
        compiled,
        { kind: 'hal.drive', resource: 'base', params: { linear, angular } },
        NOW,
      ).allowed;
    assert.equal(drive(0.5, -1.0), true);
    assert.equal(drive(-0.51, 0), false);
    assert.equal(drive(0.1, 1.01), false);
    assert.equal(drive(Number.NaN, 0), false);
    assert.equal(drive('0.1', 0), false);
  });

  it('bounds a trajectory by its maxSpeed under maxLinear, at and just past the limit', () => {
    const compiled = grants({
      grant: { kind: 'hal.drive', limits: { maxLinear: 0.5, maxAngular: 1.0 } },
    });
    const follow = (maxSpeed: unknown) =>
      matchCapability(
        compiled,
        {
          kind: 'hal.drive',
          resource: 'trajectory',
          params: { points: [{ x: 1, y: 0 }], maxSpeed },
        },
        NOW,
      ).allowed;
    assert.equal(follow(0.5), true);
    assert.equal(follow(0.5001), false);
    assert.equal(follow(-0.6), false);
    assert.equal(follow(undefined), false);
    const mixed = (params: Record<string, unknown>) =>
      matchCapability(compiled, { kind: 'hal.drive', resource: 'base', params }, NOW).allowed;
    assert.equal(mixed({ linear: 0.4, angular: 0, points: [], maxSpeed: 0.9 }), false);
    assert.equal(mixed({ linear: 0.9, angular: 0, points: [], maxSpeed: 0.1 }), false);
  });

  it('keeps an arm target inside the granted workspace box, edges included', () => {
    const compiled = grants({
      grant: {
        kind: 'hal.arm',
        limits: { workspace: { min: { x: 0, y: -0.3, z: 0 }, max: { x: 0.4, y: 0.3, z: 0.5 } } },
      },
    });
    const reach = (x: number, y: number, z: unknown) =>
      matchCapability(compiled, { kind: 'hal.arm', resource: 'arm', params: { x, y, z } }, NOW)
        .allowed;
    assert.equal(reach(0.4, -0.3, 0.5), true);
    assert.equal(reach(0.4001, 0, 0.2), false);
    assert.equal(reach(0.2, 0, -0.0001), false);
    assert.equal(reach(0.2, 0, 'high'), false);
    assert.throws(
      () =>
        parseCapabilityGrant({
          kind: 'hal.arm',
          limits: { workspace: { min: { x: 1, y: 0, z: 0 }, max: { x: 0, y: 1, z: 1 } } },
        }),
      /workspace min must not exceed max/,
    );
  });

  it('accepts only whole positive token counts under a maxTokens limit', () => {
    const compiled = grants({ grant: { kind: 'llm.chat', limits: { maxTokens: 100 } } });
    const chat = (maxOutputTokens: unknown) =>
      matchCapability(
        compiled,
        { kind: 'llm.chat', resource: 'default', params: { maxOutputTokens } },
        NOW,
      ).allowed;
    assert.equal(chat(100), true);
    assert.equal(chat(101), false);
    assert.equal(chat(-5), false);
    assert.equal(chat(0), false);
    assert.equal(chat(10.5), false);
  });

  it('bounds the model alias, the resource of an llm call, under a models limit', () => {
    const compiled = grants({ grant: { kind: 'llm.*', limits: { models: ['cheap-*'] } } });
    const chat = (resource: string) =>
      matchCapability(compiled, { kind: 'llm.chat', resource, params: {} }, NOW).allowed;
    assert.equal(chat('cheap-fast'), true);
    assert.equal(chat('expensive'), false);
  });

  it('checks every path of a multi-path intent', () => {
    const compiled = grants({ grant: { kind: 'fs.write', limits: { paths: ['workspace/**'] } } });
    const write = (params: Record<string, unknown>) =>
      matchCapability(compiled, { kind: 'fs.write', resource: 'file', params }, NOW).allowed;
    assert.equal(write({ paths: ['workspace/a', 'workspace/b/c'] }), true);
    assert.equal(write({ paths: ['workspace/a', '/etc/passwd'] }), false);
    assert.equal(write({ path: 'workspace/a', paths: ['../x'] }), false);
    assert.equal(write({ paths: 'workspace/a' }), false);
  });

  it('checks the host of a url against domains', () => {
    const compiled = grants({
      grant: { kind: 'net.fetch', limits: { domains: ['*.example.org'] } },
    });
    const fetchUrl = (url: string) =>
      matchCapability(compiled, { kind: 'net.fetch', resource: '*', params: { url } }, NOW).allowed;
    assert.equal(fetchUrl('https://api.example.org/v1'), true);
    assert.equal(fetchUrl('https://api.example.org.evil.com/'), false);
    assert.equal(fetchUrl('https://user@evil.com/?x=.example.org'), false);
    assert.equal(fetchUrl('file:///etc/passwd'), false);
    assert.equal(fetchUrl('not a url'), false);
  });

  it('allows when any one of several grants matches', () => {
    const compiled = grants(
      { grant: shell },
      { id: 'grt_any_git', grant: { kind: 'tool.call', resource: 'git' } },
    );
    assert.deepEqual(
      matchCapability(compiled, { kind: 'tool.call', resource: 'git', params: {} }, NOW),
      { allowed: true, grantId: 'grt_any_git' },
    );
  });
});
