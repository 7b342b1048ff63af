import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, normalize } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { KeelError, toKeelError } from '../errors/keel-error.ts';
import { pathExists } from '../files/path-exists.ts';
import type { SandboxReport } from './detect-sandbox.ts';
import { findExecutable, spawnWorkerProcess, systemEntryOf } from './sandbox-host.ts';
import {
  ancestorsOf,
  type MissingSandboxLayer,
  type SystemLibraryEntry,
  type WorkerSandboxLayer,
} from './sandbox-plan.ts';
import { buildSeccompFilter } from './seccomp-filter.ts';
import { createWorkerCgroup, type WorkerCgroup } from './worker-cgroup.ts';

export interface SandboxedCommandOptions {
  /** The program and its arguments; the program is looked up on the sandbox's `PATH`. */
  readonly argv: readonly string[];
  /** The workspace: an absolute folder bound read-write at the same path. */
  readonly workspace: string;
  /** Where the command starts: the workspace or a folder inside it. Default the workspace. */
  readonly cwd?: string;
  /** Extra variables (already scrubbed by the caller); `PATH`, `HOME`, `LANG` are Keel's. */
  readonly env?: Readonly<Record<string, string>>;
  /** Whether the command may use the network (its own namespace otherwise). */
  readonly network: boolean;
  readonly timeoutMs: number;
  /** Bytes kept of stdout and of stderr each; the rest is counted and dropped. */
  readonly maxOutputBytes: number;
  readonly stdin?: string;
  readonly memoryBytes: number;
  readonly maxProcesses: number;
  /** Extra absolute folders bound read-only (a toolchain outside `/usr`). */
  readonly readOnlyPaths?: readonly string[];
  readonly report: SandboxReport;
  /** Where to find `bwrap`, `prlimit` and `setpriv` (`PATH` syntax). */
  readonly searchPath: string;
  /** Production: a missing layer is an error instead of a warning in `missing`. */
  readonly required: boolean;
  readonly signal?: AbortSignal;
}

/** How a command ended. */
export interface SandboxedCommandResult {
  /** Exit code, or `null` when a signal ended it. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Bytes written to each stream in all, kept or not. */
  readonly stdoutBytes: number;
  readonly stderrBytes: number;
  readonly truncated: boolean;
  readonly timedOut: boolean;
  readonly durationMs: number;
  readonly applied: readonly WorkerSandboxLayer[];
  readonly missing: readonly MissingSandboxLayer[];
}

/** What the sandbox sees of `/etc`: name resolution, certificates, alternatives; no users. */
const ETC_PATHS = Object.freeze([
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  '/etc/localtime',
]);

/** Programs' folders; symlinks (merged /usr) are reproduced as symlinks. */
const PROGRAM_PATHS = Object.freeze(['/usr', '/bin', '/sbin', '/lib', '/lib64']);

const SEARCH_PATH_INSIDE = '/usr/local/bin:/usr/bin:/bin';
const SECCOMP_FD = 3;
const INFO_FD = 4;
const BLOCK_FD = 5;
const EXIT_WAIT_MS = 2000;

/** Everything {@link planCommand} needs to know about the host. */
export interface CommandHost {
  readonly bubblewrapPath: string | undefined;
  readonly prlimitPath: string | undefined;
  readonly setprivPath: string | undefined;
  readonly programPaths: readonly SystemLibraryEntry[];
  readonly etcPaths: readonly string[];
  /** The folder of the node binary Keel runs on (so `node`, `npm` resolve inside). */
  readonly nodeFolder: string;
  readonly uid: number;
  /** The owner of the workspace: the uid and gid the command runs as. */
  readonly workspaceOwner: { readonly uid: number; readonly gid: number };
  readonly cgroup: boolean;
  readonly arch: string;
}

/** The command line to spawn, and what it applies. */
export interface CommandPlan {
  readonly command: string;
  readonly args: readonly string[];
  readonly applied: readonly WorkerSandboxLayer[];
  readonly missing: readonly MissingSandboxLayer[];
  readonly seccomp: Buffer | undefined;
  /** The uid and gid to spawn as (when there is no bubblewrap), or `undefined`. */
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly holdsUntilAttached: boolean;
}

/**
 * Decides how to run a tool's command: bubblewrap with a read-only view of the system's
 * programs and libraries, the workspace read-write, a private `/tmp`, no network unless
 * granted, an empty environment but for `PATH`, `HOME=/tmp` and the caller's scrubbed
 * variables, its own pid namespace (so killing bubblewrap ends every process it started), the
 * command seccomp profile, `prlimit` caps, and the workspace owner's uid — never root. Pure.
 *
 * @example
 * ```ts
 * const plan = planCommand(options, host);
 * spawn(plan.command, plan.args);
 * ```
 */
export function planCommand(options: SandboxedCommandOptions, host: CommandHost): CommandPlan {
  validateCommandOptions(options);
  const applied: WorkerSandboxLayer[] = [];
  const missing: MissingSandboxLayer[] = [];
  const bubblewrap = options.report.bubblewrap.available ? host.bubblewrapPath : undefined;
  if (bubblewrap !== undefined) applied.push('bubblewrap', 'read-only-root');
  else {
    const reason = options.report.bubblewrap.available
      ? `bwrap not found on searchPath ${options.searchPath}`
      : options.report.bubblewrap.detail;
    missing.push({ layer: 'bubblewrap', reason }, { layer: 'read-only-root', reason });
  }
  if (options.network) {
    // Granted: not a missing layer, the command is meant to reach the network.
  } else if (bubblewrap !== undefined) applied.push('network-namespace');
  else missing.push({ layer: 'network-namespace', reason: 'needs bubblewrap' });
  const owner = host.workspaceOwner;
  if (owner.uid === 0) {
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      `will not run a command as root: the workspace ${options.workspace} belongs to root; give it to an unprivileged user (chown -R)`,
      { details: { workspace: options.workspace } },
    );
  }
  const dropUid = host.uid === 0;
  const setpriv = dropUid && bubblewrap !== undefined ? host.setprivPath : undefined;
  if (dropUid && bubblewrap !== undefined && setpriv === undefined) {
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      'will not run a command as root: setpriv (util-linux) not found on searchPath',
    );
  }
  applied.push('unprivileged-uid');
  if (host.cgroup) applied.push('cgroup-memory', 'cgroup-pids');
  else {
    const reason = options.report.cgroups.detail;
    missing.push({ layer: 'cgroup-memory', reason }, { layer: 'cgroup-pids', reason });
  }
  if (host.prlimitPath !== undefined) applied.push('rlimits');
  else missing.push({ layer: 'rlimits', reason: 'prlimit (util-linux) not found on searchPath' });
  let seccomp: Buffer | undefined;
  if (bubblewrap === undefined) missing.push({ layer: 'seccomp', reason: 'needs bubblewrap' });
  else if (!options.report.seccomp.available) {
    missing.push({ layer: 'seccomp', reason: options.report.seccomp.detail });
  } else {
    seccomp = buildSeccompFilter(host.arch, { kind: 'command', network: options.network });
    if (seccomp === undefined) {
      missing.push({ layer: 'seccomp', reason: `no seccomp filter for ${host.arch} yet` });
    } else applied.push('seccomp');
  }
  if (options.required && missing.length > 0) {
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      `cannot confine the command; missing: ${missing.map((entry) => entry.layer).join(', ')}`,
      { details: { missing } },
    );
  }
  const holdsUntilAttached = bubblewrap !== undefined && host.cgroup;
  const environment = commandEnvironment(options, host.nodeFolder);
  const program =
    bubblewrap === undefined
      ? [...options.argv]
      : [
          bubblewrap,
          ...bubblewrapArguments(options, host, {
            seccomp: seccomp !== undefined,
            holdsUntilAttached,
            environment,
            setpriv,
          }),
        ];
  const [command = '', ...args] =
    host.prlimitPath === undefined
      ? program
      : [host.prlimitPath, '--nofile=1024:1024', '--core=0:0', '--', ...program];
  const spawnAs = dropUid && bubblewrap === undefined ? owner : undefined;
  return {
    command,
    args,
    applied,
    missing,
    seccomp,
    uid: spawnAs?.uid,
    gid: spawnAs?.gid,
    holdsUntilAttached,
  };
}

function commandEnvironment(
  options: SandboxedCommandOptions,
  nodeFolder: string,
): Record<string, string> {
  return {
    ...options.env,
    PATH: `${nodeFolder}:${SEARCH_PATH_INSIDE}`,
    HOME: '/tmp',
    TMPDIR: '/tmp',
    LANG: 'C.UTF-8',
    // Git reads no configuration of the host and runs no pager or credential helper.
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    PAGER: 'cat',
  };
}

function bubblewrapArguments(
  options: SandboxedCommandOptions,
  host: CommandHost,
  extras: {
    readonly seccomp: boolean;
    readonly holdsUntilAttached: boolean;
    readonly environment: Readonly<Record<string, string>>;
    readonly setpriv: string | undefined;
  },
): string[] {
  const args: string[] = [];
  if (host.uid === 0) {
    args.push('--unshare-ipc', '--unshare-pid', '--unshare-uts', '--unshare-cgroup-try');
    if (!options.network) args.push('--unshare-net');
  } else {
    args.push('--unshare-all');
    if (options.network) args.push('--share-net');
  }
  args.push('--die-with-parent', '--new-session', '--clearenv', '--cap-drop', 'ALL');
  if (extras.setpriv !== undefined) {
    for (const capability of ['CAP_SETUID', 'CAP_SETGID', 'CAP_SETPCAP']) {
      args.push('--cap-add', capability);
    }
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp');
  for (const entry of host.programPaths) {
    if (entry.kind === 'symlink') args.push('--symlink', entry.target, entry.path);
    else args.push('--ro-bind', entry.path, entry.path);
  }
  const readOnly = [...host.etcPaths, host.nodeFolder, ...(options.readOnlyPaths ?? [])].filter(
    (path) => !PROGRAM_PATHS.some((root) => path === root || path.startsWith(`${root}/`)),
  );
  // bubblewrap creates missing parents 0700 when root runs it: make them passable first.
  const created = new Set<string>(['/tmp']);
  for (const path of [...readOnly, options.workspace]) {
    for (const parent of ancestorsOf(path)) {
      if (!created.has(parent)) args.push('--perms', '0755', '--dir', parent);
      created.add(parent);
    }
  }
  for (const path of readOnly) args.push('--ro-bind', path, path);
  args.push('--bind', options.workspace, options.workspace);
  args.push('--chdir', options.cwd ?? options.workspace);
  for (const [name, value] of Object.entries(extras.environment)) {
    args.push('--setenv', name, value);
  }
  if (extras.seccomp) args.push('--seccomp', String(SECCOMP_FD));
  if (extras.holdsUntilAttached) {
    args.push('--info-fd', String(INFO_FD), '--block-fd', String(BLOCK_FD));
  }
  args.push('--');
  if (extras.setpriv !== undefined) {
    const { uid, gid } = host.workspaceOwner;
    args.push(extras.setpriv, `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups');
    args.push('--inh-caps=-all', '--bounding-set=-all', '--');
  }
  args.push(...options.argv);
  return args;
}

function validateCommandOptions(options: SandboxedCommandOptions): void {
  const invalid = (field: string, message: string): KeelError =>
    new KeelError('KEEL_INVALID_ARGUMENT', `${field} ${message}`, { details: { field } });
  if (options.argv.length === 0 || options.argv.some((word) => typeof word !== 'string')) {
    throw invalid('argv', 'must be a non-empty list of strings');
  }
  if (options.argv.some((word) => word.includes('\0'))) throw invalid('argv', 'contains NUL');
  const folders = [options.workspace, ...(options.readOnlyPaths ?? [])];
  for (const folder of folders) {
    if (!isAbsolute(folder) || normalize(folder) !== folder || folder === '/') {
      throw invalid('workspace', `${folder} must be an absolute, normalised folder other than /`);
    }
  }
  const cwd = options.cwd ?? options.workspace;
  if (cwd !== options.workspace && !cwd.startsWith(`${options.workspace}/`)) {
    throw invalid('cwd', 'must be inside the workspace');
  }
  if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs <= 0) {
    throw invalid('timeoutMs', 'must be a positive whole number');
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || value.includes('\0')) {
      throw invalid('env', `variable ${name} is not a valid name or holds NUL`);
    }
  }
}

/** The host facts of a command launch, found once per call (a few `stat`s). */
async function findCommandHost(
  options: SandboxedCommandOptions,
  cgroup: boolean,
): Promise<CommandHost> {
  const [bubblewrapPath, prlimitPath, setprivPath, workspace, nodeBinary] = await Promise.all([
    findExecutable('bwrap', options.searchPath),
    findExecutable('prlimit', options.searchPath),
    findExecutable('setpriv', options.searchPath),
    stat(options.workspace),
    realpath(process.execPath),
  ]);
  if (!workspace.isDirectory()) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `workspace ${options.workspace} is not a folder`);
  }
  const programPaths: SystemLibraryEntry[] = [];
  const etcPaths: string[] = [];
  await Promise.all([
    ...PROGRAM_PATHS.map(async (path) => {
      const found = await systemEntryOf(path);
      if (found !== undefined) programPaths.push(found);
    }),
    ...ETC_PATHS.map(async (path) => {
      if (await pathExists(path)) etcPaths.push(path);
    }),
  ]);
  programPaths.sort((left, right) => left.path.localeCompare(right.path));
  etcPaths.sort();
  return {
    bubblewrapPath,
    prlimitPath,
    setprivPath,
    programPaths,
    etcPaths,
    nodeFolder: dirname(nodeBinary),
    uid: process.getuid?.() ?? -1,
    workspaceOwner: { uid: workspace.uid, gid: workspace.gid },
    cgroup,
    arch: process.arch,
  };
}

/**
 * Runs one command in the command sandbox (see {@link planCommand}) and collects its output.
 * The deadline and the abort signal kill the whole sandbox: bubblewrap's process group and
 * cgroup, and with it every process the command started (its pid namespace dies with it), so
 * nothing outlives the call. Output beyond `maxOutputBytes` per stream is counted, not kept.
 *
 * @example
 * ```ts
 * const result = await runSandboxedCommand({ argv: ['npm', 'test'], workspace: '/srv/repo', network: false, timeoutMs: 60_000, maxOutputBytes: 65_536, memoryBytes: 1 << 30, maxProcesses: 256, report, searchPath, required: false });
 * result.exitCode; // 0
 * ```
 */
export async function runSandboxedCommand(
  options: SandboxedCommandOptions,
): Promise<SandboxedCommandResult> {
  return (await startSandboxedCommand(options)).result;
}

/** A command started in the command sandbox, still running or ended. */
export interface SandboxedProcess {
  /** Keel's own child: the sandbox's outer process. */
  readonly pid: number;
  readonly applied: readonly WorkerSandboxLayer[];
  readonly missing: readonly MissingSandboxLayer[];
  /** Settles when the command has ended and its output is read (never rejects on exit codes). */
  readonly result: Promise<SandboxedCommandResult>;
  /** Whether it has ended. */
  readonly ended: boolean;
  /**
   * Sends `signal` to the command and every process it started, and to nothing else: the
   * command's cgroup is frozen while it is signalled (see `WorkerCgroup.signal`), so a pid that
   * ended meanwhile can never be a stranger's. Resolves with how many processes got it (0 once
   * ended). `SIGKILL` always works; other signals need the freezer cgroup to reach more than
   * the command itself (with bubblewrap and no freezer: `KEEL_SANDBOX_UNAVAILABLE`).
   */
  signal(signal: NodeJS.Signals): Promise<number>;
}

/** Extra options of a started command. */
export interface StartSandboxedCommandOptions extends SandboxedCommandOptions {
  /** Sees every chunk of output as it comes (a long-running process's log). */
  readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

/**
 * Starts a command in the command sandbox and resolves once it runs confined (in its cgroup),
 * with a handle to signal it and its result to come. Same confinement, deadline and caps as
 * {@link runSandboxedCommand}; the deadline is the process's lifetime.
 *
 * @example
 * ```ts
 * const server = await startSandboxedCommand({ ...options, argv: ['node', 'server.js'], timeoutMs: 3_600_000 });
 * await server.signal('SIGTERM');
 * (await server.result).signal; // 'SIGTERM'
 * ```
 */
export async function startSandboxedCommand(
  options: StartSandboxedCommandOptions,
): Promise<SandboxedProcess> {
  if (options.signal?.aborted === true) throw toKeelError(options.signal.reason, 'KEEL_ABORTED');
  const started = performance.now();
  let cgroup: WorkerCgroup | undefined;
  if (options.report.cgroups.available) {
    const result = await createWorkerCgroup({
      name: `cmd-${randomUUID()}`,
      memoryBytes: options.memoryBytes,
      maxProcesses: options.maxProcesses,
      freezer: true,
    });
    cgroup = result.cgroup;
  }
  try {
    const host = await findCommandHost(options, cgroup !== undefined);
    const plan = planCommand(options, host);
    const bubblewrapped = plan.applied.includes('bubblewrap');
    const child = await spawnWorkerProcess(plan.command, plan.args, {
      stdio: bubblewrapped
        ? ['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe']
        : ['pipe', 'pipe', 'pipe'],
      env: bubblewrapped ? {} : commandEnvironment(options, host.nodeFolder),
      cwd: options.cwd ?? options.workspace,
      detached: true,
      ...(plan.uid === undefined ? {} : { uid: plan.uid, gid: plan.gid as number }),
    });
    const supervised = supervise(child, plan, cgroup, options, started);
    // When confinement fails, the result rejects the same way: that is reported below, once.
    supervised.result.catch(() => undefined);
    const sandboxPid = await supervised.confined;
    let ended = false;
    const result = supervised.result.finally(() => {
      ended = true;
      return cgroup?.dispose();
    });
    // Nobody may await the result (a process that is only ever stopped); its end is not an error.
    result.catch(() => undefined);
    return {
      pid: child.pid as number,
      applied: plan.applied,
      missing: plan.missing,
      result,
      get ended() {
        return ended;
      },
      signal: async (signal) => {
        if (ended) return 0;
        if (signal === 'SIGKILL') {
          supervised.killAll();
          return 1;
        }
        // Keel's own child is signalled through Node, which never signals a child it reaped;
        // everything below it through the frozen cgroup. With bubblewrap the child is the
        // sandbox itself, and so is its pid 1: neither is the command.
        const own = !bubblewrapped && child.kill(signal) ? 1 : 0;
        if (cgroup?.directories.freezer === undefined) {
          if (!bubblewrapped) return own;
          throw new KeelError(
            'KEEL_SANDBOX_UNAVAILABLE',
            'without a freezer cgroup a signal could reach a reused pid; only SIGKILL is possible here',
          );
        }
        const except =
          sandboxPid === undefined ? [child.pid as number] : [child.pid as number, sandboxPid];
        return own + (await cgroup.signal(signal, except));
      },
    };
  } catch (error) {
    await cgroup?.dispose();
    throw error;
  }
}

interface Supervision {
  /** Settles once the command runs in its cgroup, with the sandbox's pid 1 (host numbering). */
  readonly confined: Promise<number | undefined>;
  readonly result: Promise<SandboxedCommandResult>;
  readonly killAll: () => void;
}

function supervise(
  child: ChildProcess,
  plan: CommandPlan,
  cgroup: WorkerCgroup | undefined,
  options: StartSandboxedCommandOptions,
  started: number,
): Supervision {
  const stdout = new CappedText(options.maxOutputBytes);
  const stderr = new CappedText(options.maxOutputBytes);
  const onOutput = options.onOutput;
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout.add(chunk);
    onOutput?.('stdout', chunk);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr.add(chunk);
    onOutput?.('stderr', chunk);
  });
  const stdio = child.stdio as readonly (Readable | Writable | null | undefined)[];
  for (const stream of stdio) stream?.on('error', () => stream.destroy());
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // A fast command can end (and close its pipes) while the spawn still tidies up, before
    // this listener exists: then its exit status is already there.
    const finished = child.exitCode !== null || child.signalCode !== null;
    const drained = [child.stdout, child.stderr].every(
      (stream) => stream === null || stream.closed,
    );
    if (finished && drained) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let timedOut = false;
  let aborted = false;
  const killAll = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
    void cgroup?.kill();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, options.timeoutMs);
  const onAbort = (): void => {
    aborted = true;
    killAll();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const finish = (): void => {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  };
  const failed = async (error: unknown): Promise<never> => {
    killAll();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, EXIT_WAIT_MS))]);
    finish();
    throw error;
  };
  const confined = (async (): Promise<number | undefined> => {
    (stdio[SECCOMP_FD] as Writable | undefined)?.end(plan.seccomp ?? Buffer.alloc(0));
    let sandboxPid: number | undefined;
    if (plan.holdsUntilAttached && cgroup !== undefined) {
      sandboxPid = await readSandboxPid(stdio[INFO_FD] as Readable);
      // No pid: bubblewrap failed to set up, and its exit status says so below.
      if (sandboxPid !== undefined) await attachAll(cgroup, [child.pid as number, sandboxPid]);
      (stdio[BLOCK_FD] as Writable).end('1');
    } else if (cgroup !== undefined && child.pid !== undefined) {
      await attachAll(cgroup, [child.pid]);
    }
    child.stdin?.end(options.stdin ?? '');
    return sandboxPid;
  })().catch(failed);
  const result = confined.then(async (): Promise<SandboxedCommandResult> => {
    const exit = await exited;
    finish();
    if (aborted) throw toKeelError(options.signal?.reason, 'KEEL_ABORTED');
    return {
      exitCode: exit.code,
      signal: exit.signal,
      stdout: stdout.text(),
      stderr: stderr.text(),
      stdoutBytes: stdout.total,
      stderrBytes: stderr.total,
      truncated: stdout.truncated || stderr.truncated,
      timedOut,
      durationMs: Math.round(performance.now() - started),
      applied: plan.applied,
      missing: plan.missing,
    };
  });
  return { confined, result, killAll };
}

/** Puts processes in the cgroup; one that has already exited (ESRCH) has nothing to cap. */
async function attachAll(cgroup: WorkerCgroup, pids: readonly number[]): Promise<void> {
  for (const pid of pids) {
    try {
      await cgroup.attach(pid);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
}

/** bubblewrap's `{"child-pid": N}`; `undefined` when it closed the descriptor first (failed). */
function readSandboxPid(info: Readable): Promise<number | undefined> {
  return new Promise((resolve) => {
    let received = '';
    const finish = (pid: number | undefined): void => {
      info.off('data', onData).off('end', onEnd).off('close', onEnd);
      resolve(pid);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('utf8');
      const pid = Number(/"child-pid"\s*:\s*(\d+)/.exec(received)?.[1]);
      if (Number.isSafeInteger(pid) && pid > 0) finish(pid);
    };
    const onEnd = (): void => finish(undefined);
    info.on('data', onData).once('end', onEnd).once('close', onEnd);
  });
}

/** The first `limit` bytes of a stream as UTF-8 text, and how many bytes came in all. */
class CappedText {
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  total = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get truncated(): boolean {
    return this.total > this.#kept;
  }

  add(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.#limit - this.#kept;
    if (room <= 0) return;
    const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.#chunks.push(kept);
    this.#kept += kept.length;
  }

  text(): string {
    // A multi-byte character cut at the cap decodes as U+FFFD, never as broken JSON.
    return Buffer.concat(this.#chunks).toString('utf8');
  }
}
