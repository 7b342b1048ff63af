import { randomBytes } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { RuntimeConfiguration } from '../../kernel/config/runtime-configuration.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { prepareStrippedGraph } from '../../platform/files/stripped-module-graph.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import { detectSandbox, type SandboxReport } from '../../platform/sandbox/detect-sandbox.ts';
import {
  assertProductionSandbox,
  spawnWorkerProcess,
} from '../../platform/sandbox/sandbox-host.ts';
import { sweepEmptyWorkerCgroups } from '../../platform/sandbox/worker-cgroup.ts';
import { launchSandboxedWorker } from '../../platform/sandbox/worker-sandbox.ts';
import type { AgentRecord } from '../../platform/storage/ports/agent-store.ts';
import type { DeploymentMetadata } from '../agents/agent-deployer.ts';
import { locateModule, pathContains } from '../agents/module-location.ts';
import type { LaunchedProcess } from './agent-worker.ts';

/** The project's root, where Keel's code is. */
const PROJECT_ROOT = resolve(fileURLToPath(new URL('../../../', import.meta.url)));
/**
 * What of the project every worker sees, read-only: Keel's code and its dependencies (the
 * JavaScript copy of the worker's code is under `node_modules`), not the whole project, where
 * an operator may keep a data directory or other files.
 */
const WORKER_CODE_PATHS = ['src', 'node_modules', 'package.json'].map((path) =>
  join(PROJECT_ROOT, path),
);
/** The worker's entry point (in the agents layer, which holds the built-in programs). */
const WORKER_ENTRY = fileURLToPath(new URL('../../agents/agent-worker-main.ts', import.meta.url));
/** Where the worker's code is kept as plain JavaScript (see {@link workerEntry}). */
const WORKER_CODE_CACHE = join(PROJECT_ROOT, 'node_modules', '.cache', 'keel-worker');
const MEBIBYTE = 1024 * 1024;

export interface WorkerLauncher {
  /** What isolation this host offers (detection runs once, at start). */
  readonly report: Promise<SandboxReport | undefined>;
  /**
   * Removes, in the background, the empty worker cgroups an earlier node killed by `kill -9`
   * left: called once the node has started, so that a start that is refused changes nothing.
   */
  sweepLeftovers(): void;
  /**
   * Starts `agent`'s worker. An abort of `signal` (the start was given up on) stops a launch
   * still setting the sandbox up, and cleans up what it had made.
   */
  launch(
    agent: AgentRecord,
    deployment: DeploymentMetadata,
    signal?: AbortSignal,
  ): Promise<LaunchedProcess>;
}

/**
 * Decides how agent workers start on this node. With `sandbox = "auto"` it detects the
 * host's isolation layers once (in the background, unless production mode needs the answer
 * before the node may start) and launches each worker under every layer available, warning
 * once about the rest; production mode refuses to start without them. With `sandbox = "off"`
 * workers are plain child processes with an empty environment (development only).
 *
 * @example
 * ```ts
 * const launcher = await createWorkerLauncher({ configuration: configuration.runtime, searchPath, logger });
 * const process = await launcher.launch(agent, deployment);
 * ```
 */
export async function createWorkerLauncher(options: {
  readonly configuration: RuntimeConfiguration;
  /** The largest frame the node takes from a worker (`workerFrameLimit`), told to each. */
  readonly maxFrameBytes: number;
  readonly searchPath: string;
  readonly logger: Logger;
  /** Where program modules may be (see `locateModule`), checked again at every launch. */
  readonly modulePlaces: { readonly dataDirectory: string; readonly modulesDirectory: string };
}): Promise<WorkerLauncher> {
  const { configuration, searchPath, logger, modulePlaces } = options;
  if (configuration.production && configuration.sandbox === 'off') {
    throw new KeelError(
      'KEEL_SANDBOX_UNAVAILABLE',
      'production mode cannot run with [runtime] sandbox = "off"',
    );
  }
  await assertDataOutOfWorkersSight(modulePlaces.dataDirectory);
  const report: Promise<SandboxReport | undefined> =
    configuration.sandbox === 'off' ? Promise.resolve(undefined) : detectSandbox({ searchPath });
  if (configuration.production) {
    await assertProductionSandbox((await report) as SandboxReport, { searchPath });
  }
  const entry = workerEntry(logger);
  let warned = false;
  const nodeArguments = async (deployment: DeploymentMetadata): Promise<string[]> => [
    `--max-old-space-size=${Math.max(16, Math.floor(deployment.manifest.limits.memoryMb * 0.75))}`,
    '--disable-warning=ExperimentalWarning',
    await entry,
    `--heartbeat-ms=${configuration.heartbeatIntervalMs}`,
    `--max-frame-bytes=${options.maxFrameBytes}`,
  ];
  return {
    report,
    sweepLeftovers() {
      if (configuration.sandbox === 'off') return;
      // Cgroups of workers that died with an earlier node killed by `kill -9`.
      void sweepEmptyWorkerCgroups({ olderThanMs: 60_000 }).then(
        (removed) => {
          if (removed > 0) logger.info({ removed }, 'removed worker cgroups an earlier node left');
        },
        (error: unknown) => logger.warn({ err: error }, 'could not sweep old worker cgroups'),
      );
    },
    async launch(agent, deployment, signal) {
      const moduleFolder = await checkedModuleFolder(deployment, modulePlaces);
      const detected = await report;
      signal?.throwIfAborted();
      if (detected === undefined) {
        if (!warned) {
          logger.warn('agent workers run without a sandbox ([runtime] sandbox = "off")');
          warned = true;
        }
        return launchPlain(await nodeArguments(deployment));
      }
      const worker = await launchSandboxedWorker({
        nodePath: process.execPath,
        nodeArguments: await nodeArguments(deployment),
        readOnlyPaths: [
          ...WORKER_CODE_PATHS,
          ...(moduleFolder === undefined ? [] : [moduleFolder]),
        ],
        name: `${agent.name.slice(0, 40)}-${randomBytes(6).toString('hex')}`,
        memoryBytes: deployment.manifest.limits.memoryMb * MEBIBYTE,
        maxProcesses: configuration.workerMaxProcesses,
        maxOpenFiles: configuration.workerMaxOpenFiles,
        report: detected,
        searchPath,
        required: configuration.production,
        ...(signal === undefined ? {} : { signal }),
      });
      if (!warned && worker.missing.length > 0) {
        logger.warn(
          { missing: worker.missing },
          'agent workers run without some isolation layers; `keel doctor` says how to add them',
        );
        warned = true;
      }
      return worker;
    },
  };
}

/**
 * Refuses a data directory that every worker would see: it holds the database, the audit key,
 * secrets and the control socket.
 */
async function assertDataOutOfWorkersSight(dataDirectory: string): Promise<void> {
  const data = await realpath(dataDirectory).catch(() => resolve(dataDirectory));
  for (const path of WORKER_CODE_PATHS) {
    const seen = await realpath(path).catch(() => path);
    if (pathContains(seen, data)) {
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `the data directory ${data} is inside ${seen}, which every agent worker can read; move it elsewhere (e.g. ~/.keel or /var/lib/keel)`,
        { details: { dataDirectory: data, readableFrom: seen } },
      );
    }
  }
}

/**
 * Makes (or finds) the JavaScript copy of the agent worker's code; resolves with its entry.
 * `npm run setup` calls it, so that a checkout the node may not write has it too.
 *
 * @example
 * ```ts
 * spawn(process.execPath, [await prepareWorkerCode()]);
 * ```
 */
export function prepareWorkerCode(): Promise<string> {
  return prepareStrippedGraph({
    entry: WORKER_ENTRY,
    sourceRoot: PROJECT_ROOT,
    cacheDirectory: WORKER_CODE_CACHE,
  });
}

/**
 * The worker's entry point as plain JavaScript, prepared in the background: a worker that
 * loads TypeScript sources loads Node's type stripper with them, about 30 MiB more in every
 * worker. Where the copy cannot be made (the project is read-only and `npm run setup` did not
 * make it), workers load the sources, and a warning says so.
 */
async function workerEntry(logger: Logger): Promise<string> {
  try {
    return await prepareWorkerCode();
  } catch (error) {
    logger.warn(
      { err: error, cacheDirectory: WORKER_CODE_CACHE },
      'agent workers load their TypeScript sources, about 30 MiB more each: their JavaScript could not be prepared (run `npm run setup` as the owner of the Keel checkout)',
    );
    return WORKER_ENTRY;
  }
}

/**
 * The folder to bind for a module program, checked again: the file may have been replaced by
 * a symlink, or moved, since it was deployed.
 */
async function checkedModuleFolder(
  deployment: DeploymentMetadata,
  places: { readonly dataDirectory: string; readonly modulesDirectory: string },
): Promise<string | undefined> {
  if (deployment.modulePath === null) return undefined;
  const location = await locateModule(deployment.modulePath, places);
  if (location.path !== deployment.modulePath) {
    throw new KeelError(
      'KEEL_MANIFEST_INVALID',
      `manifest program.module: ${deployment.modulePath} now leads to ${location.path}; redeploy the agent to accept that`,
      { details: { field: 'program.module' } },
    );
  }
  return location.folder;
}

/** A worker as a plain child process: empty environment, own process group, IPC on fd 3. */
async function launchPlain(nodeArguments: readonly string[]): Promise<LaunchedProcess> {
  const child = await spawnWorkerProcess(process.execPath, nodeArguments, {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: {},
    detached: true,
    cwd: '/',
  });
  const channel = child.stdio[3] as Duplex;
  let disposed = false;
  return {
    child,
    channel,
    applied: [],
    missing: [{ layer: 'bubblewrap', reason: 'sandbox disabled by configuration' }],
    oomKills: () => Promise.resolve(0),
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    },
  };
}
