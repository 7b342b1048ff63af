import { chmod, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * Makes `folder` and whichever of its parents are missing, each readable and searchable by
 * every user (0755) whatever the umask: for files that processes running as another user (a
 * sandboxed worker) must read.
 *
 * @example
 * ```ts
 * await makeReadableFolders('/srv/keel/node_modules/.cache/keel-worker');
 * ```
 */
export async function makeReadableFolders(folder: string): Promise<void> {
  const created = await mkdir(folder, { recursive: true });
  if (created === undefined) return;
  const first = resolve(created);
  for (let current = resolve(folder); ; current = dirname(current)) {
    await chmod(current, 0o755);
    if (current === first || current === dirname(current)) return;
  }
}
