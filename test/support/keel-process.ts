import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const KEEL_BIN = fileURLToPath(new URL('../../bin/keel.js', import.meta.url));

/** A clean environment for a child: no KEEL_* from the developer's shell leaks into a test. */
export function childEnvironment(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extra };
}

export interface KeelRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `keel …` to completion (bounded by a timeout) and captures its output. */
export async function runKeel(
  args: readonly string[],
  options: {
    readonly env?: Record<string, string>;
    readonly timeoutMs?: number;
    /** The working directory (default: this process's). */
    readonly cwd?: string;
  } = {},
): Promise<KeelRun> {
  const child = spawn(process.execPath, [KEEL_BIN, ...args], {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    env: options.env ?? childEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: options.timeoutMs ?? 60_000,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

export interface StartedKeel extends AsyncDisposable {
  readonly child: ChildProcess;
  readonly url: string;
  readonly readyLine: string;
  stderr(): string;
  stdout(): string;
  /** Sends a signal and waits for the process to exit, at most `timeoutMs`. */
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `keel start …` and resolves once it prints its ready line. */
export async function startKeel(
  args: readonly string[],
  options: {
    readonly env?: Record<string, string>;
    readonly timeoutMs?: number;
    readonly json?: boolean;
  } = {},
): Promise<StartedKeel> {
  const child = spawn(process.execPath, [KEEL_BIN, 'start', ...args], {
    env: options.env ?? childEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const readyLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `keel start was not ready within ${options.timeoutMs ?? 20_000} ms; stderr: ${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout
        .split('\n')
        .find((candidate) => /Keel ready at|"event":"ready"/.test(candidate));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    void exited.then(([code]) => {
      clearTimeout(timer);
      reject(new Error(`keel start exited with ${code} before it was ready; stderr: ${stderr}`));
    });
  });
  const url = /(https?:\/\/[^\s"]+)/.exec(readyLine)?.[1] ?? '';
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const [code, exitSignal] = await exited;
    clearTimeout(timer);
    return { code, signal: exitSignal };
  };
  return {
    child,
    url,
    readyLine,
    stderr: () => stderr,
    stdout: () => stdout,
    stop,
    async [Symbol.asyncDispose]() {
      await stop('SIGKILL', 5_000);
    },
  };
}
