import { randomBytes } from 'node:crypto';
import { type FileHandle, link, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * The process holding a lock file, if it still runs; `undefined` when free or stale.
 *
 * @example
 * ```ts
 * const holder = await inspectLockFile('/home/ana/.keel/keel.lock'); // { pid, … } or undefined
 * ```
 */
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
    for (let attempt = 0; attempt < 200; attempt += 1) {
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
      await removeStaleLock(path, holder);
    }
    throw new KeelError(
      'KEEL_DATA_DIR_LOCKED',
      `could not take the lock ${path}; other processes keep taking it`,
    );
  } finally {
    await rm(candidate, { force: true });
  }
}

/** A takeover guard older than this belongs to a process that died while taking over. */
const ABANDONED_GUARD_MS = 10_000;

/**
 * Removes a lock judged stale — exactly that one. Only the process holding the takeover guard
 * (created exclusively) may remove a lock, and it first checks that the file still carries
 * the stale holder's token: a fresh lock linked meanwhile by another process stays.
 */
async function removeStaleLock(path: string, stale: LockOwner | undefined): Promise<void> {
  const guardPath = `${path}.takeover`;
  let guard: FileHandle;
  try {
    guard = await open(guardPath, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const guardStats = await stat(guardPath).catch((statError: NodeJS.ErrnoException) => {
      if (statError.code === 'ENOENT') return undefined;
      throw statError;
    });
    if (guardStats !== undefined && Date.now() - guardStats.mtimeMs > ABANDONED_GUARD_MS) {
      await rm(guardPath, { force: true });
    }
    await sleep(10 + Math.random() * 20);
    return;
  }
  try {
    const current = await readOwner(path);
    if (stale === undefined ? current === undefined : current?.token === stale.token) {
      await rm(path, { force: true });
    }
  } finally {
    await guard.close();
    await rm(guardPath, { force: true });
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
