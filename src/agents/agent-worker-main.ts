/**
 * The entry point of an agent worker process. The node starts it (inside the sandbox) with an
 * IPC pipe on descriptor 3, no environment and no secrets; everything the agent does goes
 * through that pipe as a syscall. Arguments: `--heartbeat-ms=<n>`, `--max-frame-bytes=<n>`.
 */
import { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { KeelError } from '../platform/errors/keel-error.ts';
import { type AgentProgram, isAgentProgram } from '../runtime/worker/agent-program.ts';
import { runWorkerLoop } from '../runtime/worker/worker-loop.ts';
import { workerFrameLimit } from '../runtime/worker/worker-protocol.ts';
import { BUILTIN_PROGRAMS } from './builtin-programs.ts';

const IPC_DESCRIPTOR = 3;
const EXIT_PROTOCOL_FAILURE = 70;

/** An integer flag `--<name>=<n>` of at least `minimum`, or `fallback`. */
function integerFlag(
  argv: readonly string[],
  name: string,
  minimum: number,
  fallback: number,
): number {
  const flag = argv.find((argument) => argument.startsWith(`--${name}=`));
  const value = Number(flag?.slice(name.length + 3) ?? fallback);
  return Number.isSafeInteger(value) && value >= minimum ? value : fallback;
}

async function loadModule(path: string): Promise<AgentProgram> {
  const loaded = (await import(pathToFileURL(path).href)) as { default?: unknown };
  if (!isAgentProgram(loaded.default)) {
    throw new KeelError(
      'KEEL_MANIFEST_INVALID',
      `${path} does not export an agent program (export default defineAgent({ … }))`,
    );
  }
  return loaded.default;
}

const channel = new Socket({ fd: IPC_DESCRIPTOR, readable: true, writable: true });
runWorkerLoop({
  input: channel,
  output: channel,
  programs: BUILTIN_PROGRAMS,
  loadModule,
  heartbeatIntervalMs: integerFlag(process.argv, 'heartbeat-ms', 10, 1000),
  maxFrameBytes: integerFlag(process.argv, 'max-frame-bytes', 1024, workerFrameLimit(0)),
  pid: process.pid,
  memoryUsage: () => {
    const usage = process.memoryUsage();
    return { heapUsed: usage.heapUsed, rss: usage.rss };
  },
}).then(
  () => {
    channel.end(() => process.exit(0));
  },
  (error: unknown) => {
    process.stderr.write(
      `agent worker: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(EXIT_PROTOCOL_FAILURE);
  },
);
