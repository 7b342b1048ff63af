import type { ChildProcess } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Duplex, Readable, Writable } from 'node:stream';
import { KeelError, toKeelError } from '../errors/keel-error.ts';
import {
  existingPath,
  findExecutable,
  findSystemLibraries,
  reachableByOthers,
  readableByOthers,
  spawnWorkerProcess,
} from './sandbox-host.ts';
import {
  BLOCK_FD,
  INFO_FD,
  type MissingSandboxLayer,
  planSandbox,
  type SandboxHost,
  type SandboxPlan,
  SECCOMP_FD,
  validateOptions,
  type WorkerSandboxLayer,
  type WorkerSandboxOptions,
} from './sandbox-plan.ts';
import { createWorkerCgroup, type WorkerCgroup } from './worker-cgroup.ts';

/** A running, confined worker process. */
export interface SandboxedWorker {
  /** stdio: `['ignore', 'pipe', 'pipe', 'pipe', …]`; `child.pid` is bubblewrap's when used. */
  readonly child: ChildProcess;
  /** The worker's descriptor 3, for the IPC protocol. */
  readonly channel: Duplex;
  readonly applied: readonly WorkerSandboxLayer[];
  readonly missing: readonly MissingSandboxLayer[];
  /** How often the kernel killed the worker for its memory cap (0 without a memory cgroup). */
  oomKills(): Promise<number>;
  /** Kills whatever remains of the worker and removes its cgroup. Idempotent. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Bubblewrap needs milliseconds to set up; this only bounds a hung start. */
const START_DEADLINE_MS = 10_000;

const EXIT_WAIT_MS = 2000;

/**
 * Starts an agent worker confined by every layer the host offers: bubblewrap (`--unshare-all`
 * so no network, a read-only view of only the system libraries, `readOnlyPaths` and node,
 * an empty environment, a private /tmp), the seccomp filter (no new processes, only AF_UNIX
 * sockets), an unprivileged uid when Keel is root, memory and pids cgroups, and `prlimit`
 * caps on open files and core dumps. The worker's descriptor 3 is `channel`.
 *
 * With bubblewrap and cgroups, the sandbox process is in the cgroups before the worker program
 * starts (bubblewrap reports its pid and waits on `--block-fd` until it is attached). Without
 * bubblewrap the worker is attached right after it starts, so what it does in that first
 * moment is charged to Keel's cgroup. Missing layers are listed in `missing` for the caller to
 * log; with `required` they are an error (`KEEL_SANDBOX_UNAVAILABLE`) instead.
 *
 * Resolves once the process runs confined. bubblewrap sets up the mounts after it reported its
 * pid, so a path it cannot bind (say, one the worker uid may not enter) shows up as an early
 * exit with bubblewrap's message on stderr: wait for the worker's first message on `channel`.
 *
 * @example
 * ```ts
 * const worker = await launchSandboxedWorker({
 *   nodePath: process.execPath, nodeArguments: ['/srv/keel/dist/worker.js'],
 *   readOnlyPaths: ['/srv/keel'], name: 'agent-7', memoryBytes: 256 * 2 ** 20,
 *   maxProcesses: 64, maxOpenFiles: 256, report, searchPath, required: production,
 * });
 * worker.channel.write(frame);
 * await worker.dispose();
 * ```
 */
export async function launchSandboxedWorker(
  options: WorkerSandboxOptions,
): Promise<SandboxedWorker> {
  const uid = process.getuid?.() ?? -1;
  validateOptions(options, uid);
  throwIfAborted(options.signal);
  const nodePath = await existingPath('nodePath', options.nodePath, (path) => realpath(path));
  for (const path of options.readOnlyPaths) await existingPath('readOnlyPaths', path, stat);
  const ownPaths = [...options.readOnlyPaths, dirname(nodePath)];
  const [othersCanRead, othersCanReach] = await Promise.all([
    readableByOthers([...ownPaths, nodePath]),
    reachableByOthers(ownPaths),
  ]);
  const [bubblewrapPath, prlimitPath, setprivPath, systemLibraries] = await Promise.all([
    findExecutable('bwrap', options.searchPath),
    findExecutable('prlimit', options.searchPath),
    findExecutable('setpriv', options.searchPath),
    findSystemLibraries(),
  ]);
  let cgroup: WorkerCgroup | undefined;
  let cgroupState: SandboxHost['cgroup'];
  if (options.report.cgroups.available) {
    const result = await createWorkerCgroup({
      name: options.name,
      memoryBytes: options.memoryBytes,
      maxProcesses: options.maxProcesses,
      ...(options.cgroupRoot === undefined ? {} : { root: options.cgroupRoot }),
    });
    cgroup = result.cgroup;
    cgroupState =
      result.cgroup === undefined ? { created: false, reason: result.reason } : { created: true };
  } else {
    cgroupState = { created: false, reason: options.report.cgroups.detail };
  }
  const host: SandboxHost = {
    othersCanRead,
    othersCanReach,
    setprivPath,
    bubblewrapPath,
    prlimitPath,
    systemLibraries,
    cgroup: cgroupState,
    uid,
    arch: process.arch,
  };
  let child: ChildProcess | undefined;
  try {
    // A start given up on while its layers were looked up stops before anything is spawned;
    // one given up on while it was confined is stopped before it is handed over.
    throwIfAborted(options.signal);
    const plan = planSandbox({ ...options, nodePath }, host);
    child = await start(plan);
    await confine(child, plan, cgroup, options);
    throwIfAborted(options.signal);
    child.stderr?.off('readable', keepBuffered);
    return sandboxedWorker(child, plan, cgroup);
  } catch (error) {
    const failure = toKeelError(error, 'KEEL_SANDBOX_UNAVAILABLE');
    try {
      if (child !== undefined) await stop(child, cgroup);
      else await cgroup?.dispose();
    } catch (cleanupError) {
      throw new KeelError('KEEL_INTERNAL', `cleaning up after worker ${options.name} failed`, {
        cause: cleanupError,
        details: { name: options.name, launchError: failure.toJSON() },
      });
    }
    throw failure;
  }
}

async function start(plan: SandboxPlan): Promise<ChildProcess> {
  const bubblewrapped = plan.applied.includes('bubblewrap');
  const child = await spawnWorkerProcess(plan.command, plan.args, {
    stdio: bubblewrapped
      ? ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe']
      : ['ignore', 'pipe', 'pipe', 'pipe'],
    env: {},
    // Its own process group, so that dispose can kill the group.
    detached: true,
    ...(plan.uid === undefined ? {} : { uid: plan.uid, gid: plan.uid }),
  });
  // Node drains unwatched stdio when a child exits; bubblewrap's message on a failed start
  // must survive that. Data stays buffered for the caller when the start succeeds.
  child.stderr?.on('readable', keepBuffered);
  return child;
}

/** A `readable` listener that reads nothing: its presence alone keeps the data buffered. */
const keepBuffered = (): undefined => undefined;

async function confine(
  child: ChildProcess,
  plan: SandboxPlan,
  cgroup: WorkerCgroup | undefined,
  options: WorkerSandboxOptions,
): Promise<void> {
  const pid = child.pid as number;
  // bubblewrap closes these when it fails early, possibly with our bytes unread (ECONNRESET,
  // EPIPE). That failure reaches the caller as the worker's exit; the streams just close.
  for (const index of [SECCOMP_FD, INFO_FD, BLOCK_FD]) {
    const stream = descriptor(child, index);
    stream?.on('error', () => stream.destroy());
  }
  const seccompPipe = descriptor(child, SECCOMP_FD) as Writable | undefined;
  // bubblewrap reads the filter to end of file, after it leaves the block descriptor.
  if (seccompPipe) seccompPipe.end(plan.seccomp ?? Buffer.alloc(0));
  if (cgroup === undefined) return;
  if (!plan.holdsUntilAttached) {
    await attach(child, cgroup, [pid]);
    return;
  }
  const signal = AbortSignal.any([
    AbortSignal.timeout(START_DEADLINE_MS),
    ...(options.signal === undefined ? [] : [options.signal]),
  ]);
  const sandboxPid = await readSandboxPid(child, signal);
  await attach(child, cgroup, [pid, sandboxPid]);
  (descriptor(child, BLOCK_FD) as Writable).end('1');
}

async function attach(
  child: ChildProcess,
  cgroup: WorkerCgroup,
  pids: readonly number[],
): Promise<void> {
  try {
    for (const pid of pids) await cgroup.attach(pid);
  } catch (error) {
    // No such process: it has already exited, bubblewrap giving up on setting the sandbox up.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') throw await startFailure(child);
    throw error;
  }
}

/** Reads bubblewrap's `{"child-pid": N}` from `--info-fd`; rejects when it exits instead. */
async function readSandboxPid(child: ChildProcess, signal: AbortSignal): Promise<number> {
  const info = descriptor(child, INFO_FD) as Readable;
  const text = await new Promise<string>((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('utf8');
    };
    const finish = (outcome: () => void): void => {
      info.off('data', onData).off('end', onEnd).off('error', onError);
      signal.removeEventListener('abort', onAbort);
      outcome();
    };
    const onEnd = (): void => finish(() => resolve(received));
    const onError = (error: Error): void => finish(() => reject(error));
    const onAbort = (): void => finish(() => reject(toKeelError(signal.reason, 'KEEL_ABORTED')));
    info.on('data', onData).once('end', onEnd).once('error', onError);
    // An aborted signal fires no event: one aborted already ends the wait now.
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  const pid = Number(/"child-pid"\s*:\s*(\d+)/.exec(text)?.[1]);
  if (Number.isSafeInteger(pid) && pid > 0) return pid;
  throw await startFailure(child);
}

/** The error for a worker (or its bubblewrap) that exited while starting, with its stderr. */
async function startFailure(child: ChildProcess): Promise<KeelError> {
  // Listen before letting go of the buffer, or Node drains it when the exit comes in.
  const said = readSome(child.stderr, EXIT_WAIT_MS);
  child.stderr?.off('readable', keepBuffered);
  const exit = await waitForExit(child, EXIT_WAIT_MS);
  const stderr = await said;
  return new KeelError('KEEL_SANDBOX_UNAVAILABLE', `worker did not start: ${stderr.trim()}`, {
    details: { exit, stderr: stderr.slice(0, 2000) },
  });
}

function sandboxedWorker(
  child: ChildProcess,
  plan: SandboxPlan,
  cgroup: WorkerCgroup | undefined,
): SandboxedWorker {
  let disposal: Promise<void> | undefined;
  const dispose = (): Promise<void> => {
    disposal ??= stop(child, cgroup);
    return disposal;
  };
  return Object.freeze({
    child,
    channel: child.stdio[3] as Duplex,
    applied: Object.freeze([...plan.applied]),
    missing: Object.freeze([...plan.missing]),
    oomKills: (): Promise<number> => cgroup?.oomKills() ?? Promise.resolve(0),
    dispose,
    [Symbol.asyncDispose]: dispose,
  });
}

async function stop(child: ChildProcess, cgroup: WorkerCgroup | undefined): Promise<void> {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  await cgroup?.dispose();
  await waitForExit(child, EXIT_WAIT_MS);
  for (const index of [SECCOMP_FD, INFO_FD, BLOCK_FD]) descriptor(child, index)?.destroy();
}

/** The parent's end of the child's descriptor `index`, when it was piped. */
function descriptor(child: ChildProcess, index: number): Readable | Writable | undefined {
  const stdio: readonly (Readable | Writable | null | undefined)[] = child.stdio;
  return stdio[index] ?? undefined;
}

interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<ExitStatus | undefined> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(undefined);
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal });
    };
    child.once('exit', onExit);
  });
}

/** Whatever a stream yields until it ends or `timeoutMs` passes (for error messages). */
function readSome(stream: Readable | null, timeoutMs: number): Promise<string> {
  if (stream === null) return Promise.resolve('');
  return new Promise((resolve) => {
    let received = '';
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('utf8');
    };
    const finish = (): void => {
      clearTimeout(timer);
      stream.off('data', onData).off('end', finish).off('error', finish);
      resolve(received);
    };
    const timer = setTimeout(finish, timeoutMs);
    stream.on('data', onData).once('end', finish).once('error', finish);
  });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw toKeelError(signal.reason, 'KEEL_ABORTED');
}
