import assert from 'node:assert/strict';
import type { ErrorCode } from '../../src/platform/errors/error-catalogue.ts';
import { isKeelError } from '../../src/platform/errors/keel-error.ts';

/** Asserts that a promise rejects with a KeelError of the given code; returns the error. */
export async function rejectsWithCode(
  promise: Promise<unknown>,
  code: ErrorCode,
): Promise<Error & { code: ErrorCode; details: Readonly<Record<string, unknown>> }> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isKeelError(error), `expected a KeelError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected a rejection with ${code}, but it resolved`);
}

/** Asserts that a function throws a KeelError of the given code; returns the error. */
export function throwsWithCode(
  action: () => unknown,
  code: ErrorCode,
): Error & { code: ErrorCode } {
  try {
    action();
  } catch (error) {
    assert.ok(isKeelError(error), `expected a KeelError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected a throw with ${code}`);
}
