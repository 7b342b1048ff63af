import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { KeelError, toKeelError } from '../errors/keel-error.ts';

const execFileAsync = promisify(execFile);

/** The isolation layers that `keel doctor` and the agent-worker runtime look for. */
export const SANDBOX_LAYERS = Object.freeze([
  'bubblewrap',
  'userNamespaces',
  'cgroups',
  'seccomp',
  'landlock',
] as const);

/** One isolation layer an agent worker can be confined by. */
export type SandboxLayer = (typeof SANDBOX_LAYERS)[number];

/** Whether one layer can be used on this host, and what was found or why not, in one line. */
export interface SandboxLayerReport {
  readonly available: boolean;
  readonly detail: string;
}

/** What {@link detectSandbox} found for every layer. */
export type SandboxReport = Readonly<Record<SandboxLayer, SandboxLayerReport>>;

export interface DetectSandboxOptions {
  /**
   * The executable search path (`PATH` syntax). Also the only variable in the environment of
   * every probe process. This module never reads the environment: the caller passes it.
   */
  readonly searchPath: string;
  /** Use this `bwrap` instead of searching `searchPath` for one. */
  readonly bubblewrapPath?: string;
  /** Limit for each probe process; it is killed when it runs longer. Default 2000 ms. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Where procfs is mounted (for tests and unusual hosts). Default `/proc`. */
  readonly procDirectory?: string;
  /** Where sysfs is mounted (for tests and unusual hosts). Default `/sys`. */
  readonly sysDirectory?: string;
}

const DEFAULT_TIMEOUT_MS = 2000;

interface ProbeContext {
  readonly searchPath: string;
  readonly bubblewrapPath: string | undefined;
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  readonly procDirectory: string;
  readonly sysDirectory: string;
}

/**
 * Finds out which isolation layers this host offers agent workers, by reading procfs and sysfs
 * and by running `bwrap` and `unshare` for real (without a shell, with only `PATH` in their
 * environment, each under a timeout). The probes run concurrently and independently: a probe
 * that fails reports its layer as unavailable and says why. Rejects only for invalid options
 * (`KEEL_INVALID_ARGUMENT`) or when `signal` aborts (`KEEL_ABORTED` / `KEEL_TIMEOUT`).
 *
 * @example
 * ```ts
 * const report = await detectSandbox({ searchPath: '/usr/local/bin:/usr/bin:/bin' });
 * report.bubblewrap; // { available: true, detail: 'bwrap 0.8.0 at /usr/bin/bwrap; …' }
 * ```
 */
export async function detectSandbox(options: DetectSandboxOptions): Promise<SandboxReport> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'timeoutMs must be a positive integer', {
      details: { field: 'timeoutMs', received: timeoutMs },
    });
  }
  if (typeof options.searchPath !== 'string') {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'searchPath must be a string', {
      details: { field: 'searchPath', received: typeof options.searchPath },
    });
  }
  throwIfAborted(options.signal);
  const context: ProbeContext = {
    searchPath: options.searchPath,
    bubblewrapPath: options.bubblewrapPath,
    timeoutMs,
    signal: options.signal,
    procDirectory: options.procDirectory ?? '/proc',
    sysDirectory: options.sysDirectory ?? '/sys',
  };
  const [bubblewrap, userNamespaces, cgroups, seccomp, landlock] = await Promise.all([
    guarded(probeBubblewrap(context)),
    guarded(probeUserNamespaces(context)),
    guarded(probeCgroups(context)),
    guarded(probeSeccomp(context)),
    guarded(probeLandlock(context)),
  ]);
  // An aborted probe reports "aborted", which says nothing about the host: surface the abort.
  throwIfAborted(options.signal);
  return Object.freeze({ bubblewrap, userNamespaces, cgroups, seccomp, landlock });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw toKeelError(signal.reason, 'KEEL_ABORTED');
}

/** Turns an unexpected failure inside one probe into that layer's report, never a rejection. */
async function guarded(probe: Promise<SandboxLayerReport>): Promise<SandboxLayerReport> {
  try {
    return Object.freeze(await probe);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return Object.freeze({ available: false, detail: `probe failed: ${message}` });
  }
}

/** The confinement agent workers get (see PLATFORM-NOTES.md), around a command that does nothing. */
const BUBBLEWRAP_TEST_ARGUMENTS = Object.freeze(
  '--unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp true'.split(
    ' ',
  ),
);

async function probeBubblewrap(context: ProbeContext): Promise<SandboxLayerReport> {
  let path = context.bubblewrapPath;
  if (path === undefined) {
    path = await findExecutable('bwrap', context.searchPath);
    if (path === undefined) {
      return {
        available: false,
        detail: 'bwrap not found on PATH; install Debian package bubblewrap',
      };
    }
  } else if (!(await isExecutableFile(path))) {
    return { available: false, detail: `bwrap not executable at ${path}` };
  }
  const [version, trial] = await Promise.all([
    runCommand(path, ['--version'], context),
    runCommand(path, BUBBLEWRAP_TEST_ARGUMENTS, context),
  ]);
  const versionText = version.succeeded
    ? (/\d+(?:\.\d+)+/.exec(version.stdout)?.[0] ?? 'of unknown version')
    : 'of unknown version';
  const found = `bwrap ${versionText} at ${path}`;
  if (!trial.succeeded) return { available: false, detail: `${found}; test run ${trial.reason}` };
  const who = process.getuid?.() === 0 ? 'as root' : 'unprivileged';
  return { available: true, detail: `${found}; ${who} run works` };
}

async function probeUserNamespaces(context: ProbeContext): Promise<SandboxLayerReport> {
  const [maximum, clone, apparmor] = await Promise.all([
    readText(join(context.procDirectory, 'sys/user/max_user_namespaces')),
    readText(join(context.procDirectory, 'sys/kernel/unprivileged_userns_clone')),
    readText(join(context.procDirectory, 'sys/kernel/apparmor_restrict_unprivileged_userns')),
  ]);
  if (!maximum.found) {
    return { available: false, detail: `cannot read max_user_namespaces (${maximum.reason})` };
  }
  const facts = [`max_user_namespaces ${maximum.text}`];
  if (clone.found) facts.push(`unprivileged_userns_clone ${clone.text}`);
  if (apparmor.found) facts.push(`apparmor_restrict_unprivileged_userns ${apparmor.text}`);
  if (maximum.text === '0') return { available: false, detail: `${facts.join('; ')} (disabled)` };
  const unshare = await findExecutable('unshare', context.searchPath);
  if (unshare === undefined) {
    facts.push('not tried: unshare not found on PATH');
    return { available: !(clone.found && clone.text === '0'), detail: facts.join('; ') };
  }
  const trial = await runCommand(unshare, ['--user', '--map-root-user', 'true'], context);
  facts.push(`unshare --user --map-root-user ${trial.succeeded ? 'works' : trial.reason}`);
  return { available: trial.succeeded, detail: facts.join('; ') };
}

interface CgroupHierarchy {
  readonly label: string;
  readonly controllers: readonly string[];
  readonly writable: boolean;
}

async function probeCgroups(context: ProbeContext): Promise<SandboxLayerReport> {
  const mountRoot = join(context.sysDirectory, 'fs/cgroup');
  const membership = await readText(join(context.procDirectory, 'self/cgroup'));
  const ownPaths = parseCgroupMembership(membership.found ? membership.text : '');
  const [version1, version2] = await Promise.all([
    findCgroupVersion1(mountRoot, ownPaths),
    findCgroupVersion2(mountRoot, ownPaths.get('') ?? '/'),
  ]);
  const hierarchies = [...version1, ...(version2 === undefined ? [] : [version2.hierarchy])];
  if (hierarchies.length === 0) {
    return { available: false, detail: `no cgroup hierarchy found under ${mountRoot}` };
  }
  const usable = new Set(hierarchies.filter((h) => h.writable).flatMap((h) => h.controllers));
  const parts: string[] = [];
  const writable1 = version1.filter((h) => h.writable).map((h) => h.label);
  const readOnly1 = version1.filter((h) => !h.writable).map((h) => h.label);
  if (writable1.length > 0) parts.push(`v1 writable: ${writable1.join(', ')}`);
  if (readOnly1.length > 0) parts.push(`v1 read-only: ${readOnly1.join(', ')}`);
  if (version2 !== undefined) parts.push(version2.summary);
  const available = usable.has('memory') && usable.has('pids');
  if (!available) parts.push('no writable memory and pids controllers');
  return { available, detail: parts.join('; ') };
}

/** Maps each controller (`''` for the v2 hierarchy) to this process's cgroup path. */
function parseCgroupMembership(text: string): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match === null) continue;
    const [, controllers = '', path = '/'] = match;
    for (const controller of controllers.split(',')) paths.set(controller, path);
  }
  return paths;
}

async function findCgroupVersion1(
  mountRoot: string,
  ownPaths: ReadonlyMap<string, string>,
): Promise<CgroupHierarchy[]> {
  const found = await Promise.all(
    ['memory', 'pids', 'cpu'].map(async (controller) => {
      const root = join(mountRoot, controller);
      if (!(await isAccessible(join(root, 'cgroup.procs'), constants.F_OK))) return undefined;
      const writable = await isWritableCgroup(root, ownPaths.get(controller) ?? '/');
      return { label: controller, controllers: [controller], writable };
    }),
  );
  return found.filter((hierarchy) => hierarchy !== undefined);
}

async function findCgroupVersion2(
  mountRoot: string,
  ownPath: string,
): Promise<{ hierarchy: CgroupHierarchy; summary: string } | undefined> {
  // A pure v2 host mounts it at the root; a hybrid (systemd-style) host under `unified`.
  for (const root of [mountRoot, join(mountRoot, 'unified')]) {
    const listing = await readText(join(root, 'cgroup.controllers'));
    if (!listing.found) continue;
    const controllers = listing.text.split(/\s+/).filter((name) => name !== '');
    const writable = await isWritableCgroup(root, ownPath);
    const killFile = await findCgroupKill(root, ownPath);
    const summary =
      `v2 at ${root} (controllers: ${controllers.join(', ') || 'none'}; ` +
      `${writable ? 'writable' : 'read-only'}; ` +
      `${killFile === undefined ? 'cgroup.kill not seen' : 'cgroup.kill present'})`;
    return { hierarchy: { label: 'v2', controllers, writable }, summary };
  }
  return undefined;
}

async function isWritableCgroup(root: string, ownPath: string): Promise<boolean> {
  // Delegation may make only this process's own cgroup writable, not the hierarchy root.
  const candidates = ownPath === '/' ? [root] : [join(root, ownPath), root];
  for (const candidate of candidates) {
    if (await isAccessible(candidate, constants.W_OK)) return true;
  }
  return false;
}

/** `cgroup.kill` exists in every non-root v2 cgroup of kernels ≥ 5.14, never in the root. */
async function findCgroupKill(root: string, ownPath: string): Promise<string | undefined> {
  const directories = ownPath === '/' ? [] : [join(root, ownPath)];
  const entries = await readdir(root, { withFileTypes: true }).catch((error: unknown) => {
    if (isFileSystemError(error)) return [];
    throw error;
  });
  for (const entry of entries.slice(0, 64)) {
    if (entry.isDirectory()) directories.push(join(root, entry.name));
  }
  for (const directory of directories) {
    const candidate = join(directory, 'cgroup.kill');
    if (await isAccessible(candidate, constants.F_OK)) return candidate;
  }
  return undefined;
}

async function probeSeccomp(context: ProbeContext): Promise<SandboxLayerReport> {
  const [status, actions] = await Promise.all([
    readText(join(context.procDirectory, 'self/status')),
    readText(join(context.procDirectory, 'sys/kernel/seccomp/actions_avail')),
  ]);
  if (!status.found) {
    return { available: false, detail: `cannot read process status (${status.reason})` };
  }
  const mode = /^Seccomp:\s*(\d+)/m.exec(status.text)?.[1];
  if (mode === undefined) {
    return { available: false, detail: 'kernel built without seccomp (no Seccomp line in status)' };
  }
  const modeText = `mode ${mode}${mode === '0' ? ' (not filtered now)' : ' (already filtered)'}`;
  if (!actions.found || actions.text === '') {
    const reason = actions.found ? 'empty' : actions.reason;
    return { available: false, detail: `${modeText}; cannot read actions_avail (${reason})` };
  }
  return { available: true, detail: `${modeText}; actions: ${actions.text}` };
}

async function probeLandlock(context: ProbeContext): Promise<SandboxLayerReport> {
  const path = join(context.sysDirectory, 'kernel/security/lsm');
  const lsm = await readText(path);
  if (!lsm.found) {
    const hint = lsm.reason === 'missing' ? '; securityfs may not be mounted' : '';
    return { available: false, detail: `cannot read ${path} (${lsm.reason}${hint})` };
  }
  const modules = lsm.text.split(',').filter((name) => name !== '');
  return modules.includes('landlock')
    ? { available: true, detail: `landlock is an active security module (${modules.join(', ')})` }
    : { available: false, detail: `landlock not among active modules (${modules.join(', ')})` };
}

async function findExecutable(name: string, searchPath: string): Promise<string | undefined> {
  // Relative and empty entries would resolve against the working directory: never search them.
  const directories = searchPath.split(delimiter).filter((directory) => isAbsolute(directory));
  for (const directory of directories) {
    const candidate = join(directory, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutableFile(path: string): Promise<boolean> {
  if (!(await isAccessible(path, constants.X_OK))) return false;
  return (await stat(path)).isFile();
}

async function isAccessible(path: string, mode: number): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch (error) {
    if (isFileSystemError(error)) return false;
    throw error;
  }
}

type TextRead =
  | { readonly found: true; readonly text: string }
  | { readonly found: false; readonly reason: string };

async function readText(path: string): Promise<TextRead> {
  try {
    return { found: true, text: (await readFile(path, 'utf8')).trim() };
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    return { found: false, reason: describeFileSystemError(error) };
  }
}

function isFileSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

function describeFileSystemError(error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return 'missing';
  if (error.code === 'EACCES' || error.code === 'EPERM') return 'permission denied';
  return error.code ?? error.message;
}

type CommandOutcome =
  | { readonly succeeded: true; readonly stdout: string }
  | { readonly succeeded: false; readonly reason: string };

async function runCommand(
  file: string,
  args: readonly string[],
  context: ProbeContext,
): Promise<CommandOutcome> {
  try {
    const { stdout } = await execFileAsync(file, args, {
      env: { PATH: context.searchPath },
      timeout: context.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024,
      encoding: 'utf8',
      ...(context.signal === undefined ? {} : { signal: context.signal }),
    });
    return { succeeded: true, stdout };
  } catch (error) {
    return { succeeded: false, reason: describeCommandFailure(error, context.timeoutMs) };
  }
}

interface CommandFailure {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly killed?: unknown;
  readonly signal?: unknown;
  readonly stderr?: unknown;
  readonly message?: unknown;
}

function describeCommandFailure(error: unknown, timeoutMs: number): string {
  if (typeof error !== 'object' || error === null) return `failed: ${String(error)}`;
  const failure = error as CommandFailure;
  if (failure.name === 'AbortError') return 'aborted';
  if (failure.code === 'ENOENT') return 'could not start (not found)';
  if (typeof failure.code === 'string') return `could not start (${failure.code})`;
  if (failure.killed === true && failure.signal === 'SIGKILL')
    return `timed out after ${timeoutMs} ms`;
  if (typeof failure.signal === 'string') return `killed by ${failure.signal}`;
  const stderr = typeof failure.stderr === 'string' ? failure.stderr.trim().split('\n')[0] : '';
  const said = stderr === undefined || stderr === '' ? '' : `: ${stderr.slice(0, 160)}`;
  if (typeof failure.code === 'number') return `exited with status ${failure.code}${said}`;
  return `failed: ${String(failure.message)}`;
}

/**
 * The report of a node whose configuration turns the sandbox off (`[runtime] sandbox = "off"`,
 * development only): every layer unavailable, and that setting named as the reason.
 *
 * @example
 * ```ts
 * const report = (await launcher.report) ?? SANDBOX_OFF_REPORT;
 * ```
 */
export const SANDBOX_OFF_REPORT: SandboxReport = Object.freeze(
  Object.fromEntries(
    SANDBOX_LAYERS.map((layer) => [
      layer,
      Object.freeze({ available: false, detail: 'sandbox = "off" in [runtime]' }),
    ]),
  ) as Record<SandboxLayer, SandboxLayerReport>,
);
