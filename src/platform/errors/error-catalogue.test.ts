import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CATALOGUE, type ErrorCode, isErrorCode } from './error-catalogue.ts';
import { isKeelError, KeelError, toKeelError } from './keel-error.ts';
import { renderErrorCatalogue } from './render-error-catalogue.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function sourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true, recursive: true });
  return entries
    .filter(
      (entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'),
    )
    .map((entry) => join(entry.parentPath, entry.name));
}

describe('the error catalogue', () => {
  it('agrees with docs/errors.md (run npm run docs:errors after changing it)', async () => {
    assert.equal(await readFile(join(ROOT, 'docs', 'errors.md'), 'utf8'), renderErrorCatalogue());
  });

  it('contains every code the sources use', async () => {
    const unknown = new Set<string>();
    for (const file of await sourceFiles(join(ROOT, 'src'))) {
      // Codes appear where errors are made or compared (environment variables share the prefix).
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(
        /(?:KeelError\(\s*|[=!]==\s*|code:\s*|\?\?\s*|toKeelError\([^,]+,\s*)'(KEEL_[A-Z_]+)'/g,
      )) {
        if (!isErrorCode(match[1])) unknown.add(`${match[1]} in ${file}`);
      }
    }
    assert.deepEqual([...unknown], []);
  });

  it('gives every code a valid status, a message and a hint', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      assert.match(code, /^KEEL_[A-Z_]+$/);
      assert.ok(entry.status >= 400 && entry.status <= 599, code);
      assert.ok(entry.message.length > 0 && entry.hint.length > 0, code);
    }
  });
});

describe('KeelError', () => {
  it('carries the catalogue entry and crosses boundaries as JSON', () => {
    const error = new KeelError('KEEL_BUDGET_EXHAUSTED', 'the budget agent:a1 is spent', {
      details: { scope: 'agent:a1' },
      cause: new Error('inner'),
    });
    assert.equal(error.status, 402);
    assert.equal(error.retryable, false);
    const json = JSON.parse(JSON.stringify(error)) as unknown;
    assert.deepEqual(json, {
      code: 'KEEL_BUDGET_EXHAUSTED',
      message: 'the budget agent:a1 is spent',
      status: 402,
      retryable: false,
      hint: ERROR_CATALOGUE.KEEL_BUDGET_EXHAUSTED.hint,
      details: { scope: 'agent:a1' },
    });
    const revived = KeelError.fromJSON(json);
    assert.ok(isKeelError(revived));
    assert.deepEqual(revived.toJSON(), error.toJSON());
  });

  it('is recognised by its marker, not by instanceof', () => {
    const lookalike = Object.assign(Object.create(null) as object, {
      [Symbol.for('keel.error')]: true,
      code: 'KEEL_INTERNAL',
    });
    assert.ok(isKeelError(lookalike));
    assert.ok(!isKeelError(new Error('plain')));
    assert.ok(!isKeelError({ code: 'KEEL_INTERNAL' }));
  });

  it('turns unknown JSON into KEEL_INTERNAL rather than trusting it', () => {
    assert.equal(KeelError.fromJSON({ code: 'NOT_A_CODE', message: 'x' }).code, 'KEEL_INTERNAL');
    assert.equal(KeelError.fromJSON('nonsense').code, 'KEEL_INTERNAL');
  });

  it('maps timeouts and aborts to their codes, and wraps the rest with a cause', () => {
    assert.equal(
      toKeelError(AbortSignal.timeout(0).reason ?? new DOMException('t', 'TimeoutError')).code,
      'KEEL_TIMEOUT',
    );
    assert.equal(toKeelError(new DOMException('stop', 'AbortError')).code, 'KEEL_ABORTED');
    const wrapped = toKeelError(new TypeError('boom'), 'KEEL_EXECUTOR_FAILED');
    assert.equal(wrapped.code, 'KEEL_EXECUTOR_FAILED');
    assert.ok(wrapped.cause instanceof TypeError);
    const code: ErrorCode = 'KEEL_CONFLICT';
    assert.equal(toKeelError(new KeelError(code)).code, code);
  });
});
