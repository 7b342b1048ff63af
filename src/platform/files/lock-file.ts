import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { KeelError } from '../errors/keel-error.ts';

/** What a lock file records about its holder. */
export interface LockOwner {
  readonly pid: number;
  /** The holder's start time in clock ticks since boot (from /proc), to survive pid reuse. */
  readonly startTicks: string | null;
  readonly hostname: string;
  readonly token: string;
  readonly acquiredAt: number;
}

async function processStartTicks(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) follows the parenthesised command name, which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockOwner;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

async function holderIsRunning(owner: LockOwner): Promise<boolean> {
  if (owner.hostname !== hostname()) return true;
  if (!isAlive(owner.pid)) return false;
  if (owner.startTicks === null) return true;
  return (await processStartTicks(owner.pid)) === owner.startTicks;
}

/** The process holding a lock file, if it still runs; `undefined` when free or stale. */
export async function inspectLockFile(path: string): Promise<LockOwner | undefined> {
  const holder = await readOwner(path);
  return holder !== undefined && (await holderIsRunning(holder)) ? holder : undefined;
}

/** A held lock; `release()` removes the file if it is still ours. */
export interface LockHandle extends AsyncDisposable {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Takes an exclusive lock file (e.g. one node per data directory). The file is created
 * atomically with `link`, so two processes can never both hold it. A lock left by a process
 * that no longer runs on this host (crash, `kill -9`) is taken over.
 *
 * @example
 * ```ts
 * await using lock = await acquireLockFile(join(dataDir, 'keel.lock'), 'a Keel node');
 * ```
 */
export async function acquireLockFile(
  path: string,
  holderDescription: string,
): Promise<LockHandle> {
  const owner: LockOwner = {
    pid: process.pid,
    startTicks: await processStartTicks(process.pid),
    hostname: hostname(),
    token: randomBytes(12).toString('hex'),
    acquiredAt: Date.now(),
  };
  const candidate = `${path}.${owner.token}`;
  await writeFile(candidate, `${JSON.stringify(owner)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        await link(candidate, path);
        return handleFor(path, owner.token);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = await readOwner(path);
      if (holder !== undefined && (await holderIsRunning(holder))) {
        throw new KeelError(
          'KEEL_DATA_DIR_LOCKED',
          `${holderDescription} (pid ${holder.pid} on ${holder.hostname}) is already using ${path}`,
          { details: { pid: holder.pid, hostname: holder.hostname, path } },
        );
      }
      // Stale: move it aside atomically; if another process did so first, rename fails and we
      // simply try to link again.
      await rename(path, `${path}.stale-${owner.token}`).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      await rm(`${path}.stale-${owner.token}`, { force: true });
    }
    throw new KeelError(
      'KEEL_DATA_DIR_LOCKED',
      `could not take the lock ${path}; another process keeps taking it`,
    );
  } finally {
    await rm(candidate, { force: true });
  }
}

function handleFor(path: string, token: string): LockHandle {
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    const holder = await readOwner(path);
    if (holder?.token === token) await rm(path, { force: true });
  };
  return { path, release, [Symbol.asyncDispose]: release };
}
