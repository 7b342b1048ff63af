import { z } from 'zod';

/** Base64 of a raw 32-byte Ed25519 public key (what `keel keygen` prints). */
const PUBLIC_KEY = z
  .string()
  .regex(/^[A-Za-z0-9+/]{43}=$/, 'the base64 of a 32-byte Ed25519 public key (from keel keygen)');

const TrustedKey = z.strictObject({
  name: z.string().min(1).max(64),
  public_key: PUBLIC_KEY,
});

/** `[agents]`: which manifest publishers the node trusts. */
export const AgentsSection = z.strictObject({
  /** Accept unsigned manifests. For development only; refused with `--production`. */
  development: z.boolean().default(false),
  trusted_keys: z.array(TrustedKey).max(64).default([]),
});

/** `[runtime]`: agent workers, their isolation and supervision, and the run scheduler. */
export const RuntimeSection = z.strictObject({
  /** Refuse to start unless every isolation layer is available (also `--production`, `KEEL_PRODUCTION=1`). */
  production: z.boolean().default(false),
  /** `auto`: every layer the host offers; `off`: plain child processes (development only). */
  sandbox: z.enum(['auto', 'off']).default('auto'),
  max_concurrent_runs: z.number().int().min(1).max(1024).default(16),
  /** The most memory a worker may have: a manifest asking more (`limits.memoryMb`) is refused. */
  worker_memory_mb: z.number().int().min(64).max(65_536).default(256),
  worker_max_processes: z.number().int().min(16).max(4096).default(64),
  worker_max_open_files: z.number().int().min(64).max(65_536).default(256),
  heartbeat_interval_ms: z.number().int().min(50).max(60_000).default(1000),
  /** A worker silent for this long is killed and restarted. */
  watchdog_timeout_ms: z.number().int().min(200).max(600_000).default(10_000),
  restart_initial_delay_ms: z.number().int().min(1).max(60_000).default(200),
  restart_max_delay_ms: z.number().int().min(1).max(3_600_000).default(30_000),
  /**
   * At most this many restarts of one agent in a row (see RestartPolicy); past it the agent
   * stays crashed. A worker that ran `restart_window_seconds` before it crashed ends the row.
   */
  restart_budget: z.number().int().min(1).max(1000).default(10),
  restart_window_seconds: z.number().int().min(1).max(86_400).default(60),
  /** How often schedules are checked. */
  schedule_tick_ms: z.number().int().min(100).max(60_000).default(1000),
});

export type AgentsFile = z.output<typeof AgentsSection>;
export type RuntimeFile = z.output<typeof RuntimeSection>;

export interface AgentsConfiguration {
  readonly development: boolean;
  readonly trustedKeys: readonly { readonly name: string; readonly publicKey: string }[];
}

export interface RuntimeConfiguration {
  readonly production: boolean;
  readonly sandbox: 'auto' | 'off';
  readonly maxConcurrentRuns: number;
  readonly workerMemoryMb: number;
  readonly workerMaxProcesses: number;
  readonly workerMaxOpenFiles: number;
  readonly heartbeatIntervalMs: number;
  readonly watchdogTimeoutMs: number;
  readonly restartInitialDelayMs: number;
  readonly restartMaxDelayMs: number;
  readonly restartBudget: number;
  readonly restartWindowMs: number;
  readonly scheduleTickMs: number;
}

/**
 * Converts the `[agents]` section to its runtime shape.
 *
 * @example
 * ```ts
 * toAgentsConfiguration({ development: false, trusted_keys: [] });
 * ```
 */
export function toAgentsConfiguration(file: AgentsFile): AgentsConfiguration {
  return {
    development: file.development,
    trustedKeys: file.trusted_keys.map((key) => ({ name: key.name, publicKey: key.public_key })),
  };
}

/**
 * Converts the `[runtime]` section to its runtime shape.
 *
 * @example
 * ```ts
 * toRuntimeConfiguration(RuntimeSection.parse({}));
 * ```
 */
export function toRuntimeConfiguration(file: RuntimeFile): RuntimeConfiguration {
  return {
    production: file.production,
    sandbox: file.sandbox,
    maxConcurrentRuns: file.max_concurrent_runs,
    workerMemoryMb: file.worker_memory_mb,
    workerMaxProcesses: file.worker_max_processes,
    workerMaxOpenFiles: file.worker_max_open_files,
    heartbeatIntervalMs: file.heartbeat_interval_ms,
    watchdogTimeoutMs: file.watchdog_timeout_ms,
    restartInitialDelayMs: file.restart_initial_delay_ms,
    restartMaxDelayMs: Math.max(file.restart_max_delay_ms, file.restart_initial_delay_ms),
    restartBudget: file.restart_budget,
    restartWindowMs: file.restart_window_seconds * 1000,
    scheduleTickMs: file.schedule_tick_ms,
  };
}
