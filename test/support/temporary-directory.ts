import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh private directory under the system temp dir, removed by `Symbol.asyncDispose`.
 *
 * @example
 * ```ts
 * await using directory = await temporaryDirectory();
 * ```
 */
export async function temporaryDirectory(
  prefix = 'keel-test-',
): Promise<{ path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    async [Symbol.asyncDispose]() {
      await rm(path, { recursive: true, force: true });
    },
  };
}
