import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  compileCommand,
  compileDomain,
  compileGlob,
  compilePath,
  hasShellMetacharacters,
  matchCommand,
  matchDomain,
  matchGlob,
  matchPath,
  normaliseIntentPath,
} from './pattern-matchers.ts';

describe('matchGlob', () => {
  it('matches whole strings with * and ?', () => {
    assert.equal(matchGlob('shell', 'shell'), true);
    assert.equal(matchGlob('shell', 'shell2'), false);
    assert.equal(matchGlob('git.*', 'git.commit'), true);
    assert.equal(matchGlob('git.*', 'github'), false);
    assert.equal(matchGlob('gpt-?', 'gpt-4'), true);
    assert.equal(matchGlob('gpt-?', 'gpt-4o'), false);
    assert.equal(matchGlob('*', ''), true);
  });

  it('matches one code point with ?, also outside the basic plane', () => {
    assert.equal(matchGlob('model-?', 'model-😀'), true);
    assert.equal(matchGlob('model-?', 'model-😀😀'), false);
  });

  it('stays fast on hostile patterns with many stars (no backtracking blow-up)', {
    timeout: 10_000,
  }, () => {
    const long = 'a'.repeat(8_000);
    assert.equal(matchGlob('*-*-*-x', '-'.repeat(4_000)), false);
    assert.equal(matchGlob('*a*a*a*a*a*a*a*a*b', long), false);
    assert.equal(matchPath('ws/*.*.*.bak', `ws/${'.'.repeat(4_000)}`), false);
    assert.equal(matchCommand('git *-*-*x', `git ${'-'.repeat(8_000)}`), false);
    assert.equal(matchGlob('*a*a*a*a*a*a*a*a*a', long), true);
  });

  it('treats regular-expression characters literally', () => {
    assert.equal(matchGlob('a.b', 'axb'), false);
    assert.equal(matchGlob('(a|b)', 'a'), false);
    assert.equal(matchGlob('(a|b)', '(a|b)'), true);
  });
});

describe('matchPath', () => {
  it('matches ** across segments and * within one', () => {
    assert.equal(matchPath('workspace/**', 'workspace/src/app.ts'), true);
    assert.equal(matchPath('workspace/**', 'workspace'), true);
    assert.equal(matchPath('workspace/*.ts', 'workspace/app.ts'), true);
    assert.equal(matchPath('workspace/*.ts', 'workspace/src/app.ts'), false);
    assert.equal(matchPath('src/**/test/*.ts', 'src/a/b/test/x.ts'), true);
    assert.equal(matchPath('src/**/test/*.ts', 'src/test/x.ts'), true);
    assert.equal(matchPath('src/**/test/*.ts', 'src/a/b/x.ts'), false);
  });

  it('never lets .. escape the pattern', () => {
    assert.equal(matchPath('workspace/**', 'workspace/../etc/passwd'), false);
    assert.equal(matchPath('workspace/**', '../workspace/x'), false);
    assert.equal(matchPath('**', '../x'), false);
    assert.equal(matchPath('workspace/**', 'workspace/a/../../x'), false);
  });

  it('normalises harmless dots and slashes', () => {
    assert.equal(matchPath('workspace/**', './workspace//src/./a.ts'), true);
    assert.equal(matchPath('workspace/a.ts', 'workspace/b/../a.ts'), true);
  });

  it('keeps absolute and relative paths apart', () => {
    assert.equal(matchPath('workspace/**', '/workspace/x'), false);
    assert.equal(matchPath('/srv/data/**', '/srv/data/x'), true);
    assert.equal(matchPath('/srv/data/**', 'srv/data/x'), false);
  });

  it('refuses NUL bytes and empty paths', () => {
    assert.equal(matchPath('**', 'a\0b'), false);
    assert.equal(matchPath('**', ''), false);
    assert.equal(normaliseIntentPath('a/\0'), undefined);
  });

  it('never matches a path with an escaping .. segment, whatever the pattern', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.array(fc.constantFrom('a', 'b', '..', '.', '**', '*')),
        (pattern, parts) => {
          const value = parts.join('/');
          const normalised = normaliseIntentPath(value);
          if (compilePath(pattern)(value)) {
            assert.ok(normalised !== undefined && !normalised.split('/').includes('..'));
          }
        },
      ),
    );
  });
});

describe('matchDomain', () => {
  it('matches exact names and subdomains of *. patterns', () => {
    assert.equal(matchDomain('example.org', 'example.org'), true);
    assert.equal(matchDomain('example.org', 'Example.ORG.'), true);
    assert.equal(matchDomain('example.org', 'api.example.org'), false);
    assert.equal(matchDomain('*.example.org', 'api.example.org'), true);
    assert.equal(matchDomain('*.example.org', 'a.b.example.org'), true);
    assert.equal(matchDomain('*.example.org', 'example.org'), false);
  });

  it('refuses look-alike and malformed hosts', () => {
    assert.equal(matchDomain('*.example.org', 'example.org.evil.com'), false);
    assert.equal(matchDomain('*.example.org', 'evilexample.org'), false);
    assert.equal(matchDomain('*', 'exa mple.org'), false);
    assert.equal(matchDomain('*', 'a..b'), false);
  });

  it('never matches IP literals through a wildcard', () => {
    assert.equal(matchDomain('*', '127.0.0.1'), false);
    assert.equal(matchDomain('*.0.1', '127.0.0.1'), false);
    assert.equal(matchDomain('*', '0x7f.1'), false);
    assert.equal(matchDomain('*', '::1'), false);
    assert.equal(matchDomain('10.0.0.5', '10.0.0.5'), true);
  });

  it('only matches hosts that end with the suffix of a *. pattern', () => {
    fc.assert(
      fc.property(fc.domain(), fc.domain(), (suffix, host) => {
        if (compileDomain(`*.${suffix}`)(host)) {
          assert.ok(host.toLowerCase().replace(/\.$/, '').endsWith(`.${suffix.toLowerCase()}`));
        }
      }),
    );
  });
});

describe('matchCommand', () => {
  it('matches exact commands and trailing * arguments', () => {
    assert.equal(matchCommand('npm test', 'npm test'), true);
    assert.equal(matchCommand('npm test', 'npm test -- --watch'), false);
    assert.equal(matchCommand('git *', 'git status --short'), true);
    assert.equal(matchCommand('git *', 'git'), true);
    assert.equal(matchCommand('git *', 'gitk'), false);
    assert.equal(matchCommand('git log*', 'git log --oneline'), false);
    assert.equal(matchCommand('npm run test:*', 'npm run test:unit'), true);
    assert.equal(matchCommand('*', 'anything at all'), true);
  });

  it('never matches commands that a shell would read as more than one', () => {
    for (const command of [
      'git status; rm -rf /',
      'git status && curl evil',
      'git status | sh',
      'git $(whoami)',
      'git `id`',
      'git status > /etc/passwd',
      'git status\nrm -rf /',
      'git "quoted"',
      "git 'quoted'",
      'git status\\',
      'git status\u00a0--porcelain',
      'git status\u2003x',
      'git\ufeffstatus',
      'git status\u200b',
      'git status\u2028rm',
    ]) {
      assert.equal(matchCommand('git *', command), false, command);
      assert.equal(matchCommand('*', command), false, command);
    }
  });

  it('never matches a command with metacharacters, whatever the pattern', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (pattern, command) => {
        if (compileCommand(pattern)(command)) assert.equal(hasShellMetacharacters(command), false);
      }),
    );
  });
});

describe('pattern compilers', () => {
  it('never throw on arbitrary patterns or values', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (pattern, value) => {
        for (const compile of [compileGlob, compilePath, compileDomain, compileCommand]) {
          assert.equal(typeof compile(pattern)(value), 'boolean');
        }
      }),
    );
  });
});
