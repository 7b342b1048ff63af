import { z } from 'zod';
import { DEFAULT_LOCAL_SERVICES } from '../../platform/net/probe-tcp-service.ts';
import { TRUST_LEVELS, type TrustLevel } from '../../platform/storage/ports/agent-store.ts';
import { DEFAULT_LEASE_CALLS } from '../budgets/budget-ledger.ts';
import { type ModelsConfiguration, ModelsSection } from './models-configuration.ts';
import { type RoboticsConfiguration, RoboticsSection } from './robotics-configuration.ts';
import {
  type AgentsConfiguration,
  AgentsSection,
  type RuntimeConfiguration,
  RuntimeSection,
} from './runtime-configuration.ts';

/**
 * The schema of `config.toml`, in the file's own shape (snake_case sections). Unknown keys are
 * errors, so a typo never silently falls back to a default.
 */
const NodeSection = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes')
    .default('keel'),
  host: z.string().min(1).max(253).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(7420),
  /** Largest HTTP request body accepted, in bytes. */
  max_body_bytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
});

const LogSection = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  format: z.enum(['auto', 'json', 'pretty']).default('auto'),
});

const StorageSection = z.strictObject({
  synchronous: z.enum(['full', 'normal']).default('full'),
});

const TlsSection = z.strictObject({
  cert_file: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
});

const ApprovalRule = z.strictObject({
  kind: z.string().min(1).max(64),
  resource: z.string().min(1).max(256).default('*'),
  trust_levels: z
    .array(z.enum(TRUST_LEVELS as [TrustLevel, ...TrustLevel[]]))
    .min(1)
    .default([...TRUST_LEVELS]),
  reason: z.string().max(500).optional(),
});

const ApprovalsSection = z.strictObject({
  ttl_seconds: z
    .number()
    .int()
    .min(10)
    .max(30 * 86_400)
    .default(3600),
  sweep_interval_seconds: z.number().int().min(1).max(3600).default(5),
  rules: z.array(ApprovalRule).max(1000).default([]),
});

const GateSection = z.strictObject({
  max_intent_bytes: z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(256 * 1024),
  default_timeout_ms: z.number().int().min(1).max(3_600_000).default(30_000),
  budget_lease_calls: z.number().int().min(1).max(64).default(DEFAULT_LEASE_CALLS),
});

const ToolsSection = z.strictObject({
  command_timeout_ms: z.number().int().min(100).max(3_600_000).default(300_000),
  command_output_bytes: z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(65_536),
  command_memory_mb: z.number().int().min(32).max(65_536).default(2048),
  command_max_processes: z.number().int().min(8).max(65_536).default(512),
  protected_branches: z.array(z.string().min(1).max(200)).max(100).default(['main', 'master']),
  fetch_timeout_ms: z.number().int().min(100).max(600_000).default(15_000),
  fetch_max_bytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(262_144),
  fetch_max_redirects: z.number().int().min(0).max(20).default(5),
  fetch_allowed_addresses: z.array(z.string().min(1).max(64)).max(100).default([]),
  process_max_per_agent: z.number().int().min(1).max(64).default(4),
  process_lifetime_ms: z.number().int().min(1000).max(86_400_000).default(3_600_000),
  process_log_bytes: z
    .number()
    .int()
    .min(4096)
    .max(16 * 1024 * 1024)
    .default(262_144),
  process_stop_grace_ms: z.number().int().min(0).max(60_000).default(5000),
});

const ServiceTarget = z.strictObject({
  name: z.string().min(1).max(64),
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65_535),
});

const DoctorSection = z.strictObject({
  services: z
    .array(ServiceTarget)
    .max(64)
    .default(DEFAULT_LOCAL_SERVICES.map((service) => ({ ...service }))),
});

/**
 * The schema of the whole `config.toml`.
 */
export const ConfigurationFileSchema = z.strictObject({
  node: NodeSection.prefault({}),
  log: LogSection.prefault({}),
  storage: StorageSection.prefault({}),
  tls: TlsSection.prefault({}),
  approvals: ApprovalsSection.prefault({}),
  gate: GateSection.prefault({}),
  tools: ToolsSection.prefault({}),
  doctor: DoctorSection.prefault({}),
  models: ModelsSection.prefault({}),
  agents: AgentsSection.prefault({}),
  runtime: RuntimeSection.prefault({}),
  robotics: RoboticsSection.prefault({}),
});

export type ConfigurationFile = z.output<typeof ConfigurationFileSchema>;

/** The validated, frozen configuration the composition root injects. */
export interface Configuration {
  readonly dataDirectory: string;
  readonly configFile: string;
  readonly secretsFile: string;
  readonly databaseFile: string;
  readonly lockFile: string;
  readonly node: {
    readonly name: string;
    readonly host: string;
    readonly port: number;
    readonly maxBodyBytes: number;
  };
  readonly log: {
    readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
    readonly format: 'auto' | 'json' | 'pretty';
  };
  readonly storage: { readonly synchronous: 'full' | 'normal' };
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  readonly approvals: {
    readonly ttlMs: number;
    readonly sweepIntervalMs: number;
    readonly rules: readonly {
      readonly kind: string;
      readonly resource: string;
      readonly trustLevels: readonly TrustLevel[];
      readonly reason: string | null;
    }[];
  };
  readonly gate: {
    readonly maxIntentBytes: number;
    readonly defaultTimeoutMs: number;
    readonly budgetLeaseCalls: number;
  };
  readonly tools: {
    readonly commands: {
      readonly timeoutMs: number;
      readonly maxOutputBytes: number;
      readonly memoryBytes: number;
      readonly maxProcesses: number;
      readonly protectedBranches: readonly string[];
    };
    readonly fetch: {
      readonly timeoutMs: number;
      readonly maxBytes: number;
      readonly maxRedirects: number;
      readonly allowedAddresses: readonly string[];
    };
    readonly processes: {
      readonly maxPerAgent: number;
      readonly lifetimeMs: number;
      readonly logBytes: number;
      readonly stopGraceMs: number;
    };
  };
  readonly doctor: {
    readonly services: readonly {
      readonly name: string;
      readonly host: string;
      readonly port: number;
    }[];
  };
  readonly models: ModelsConfiguration;
  readonly agents: AgentsConfiguration;
  readonly runtime: RuntimeConfiguration;
  readonly robotics: RoboticsConfiguration;
}

/** The config file Keel writes into a new data directory. */
export const DEFAULT_CONFIGURATION_TOML = `# Keel node configuration. Every key is optional; the values shown are the defaults.
# Environment overrides: KEEL_HOST, KEEL_PORT, KEEL_LOG_LEVEL, KEEL_LOG_FORMAT.
# Secrets do not belong here: put them in secrets.toml (mode 0600) or KEEL_SECRET_<NAME>.

[node]
name = "keel"
host = "127.0.0.1"      # a non-loopback address requires [tls]
port = 7420             # 0 picks a free port
max_body_bytes = 1048576

[log]
level = "info"          # trace, debug, info, warn, error, fatal, silent
format = "auto"         # auto (pretty on a terminal, JSON otherwise), json, pretty

[storage]
synchronous = "full"    # full: every commit is fsynced; normal: survives a crash, not power loss

[tls]
# cert_file = "/etc/keel/tls.crt"
# key_file = "/etc/keel/tls.key"

[approvals]
ttl_seconds = 3600
sweep_interval_seconds = 5
# [[approvals.rules]]
# kind = "tool.call"
# resource = "shell"
# trust_levels = ["untrusted", "standard"]
# reason = "shell commands need a human"

[gate]
max_intent_bytes = 262144
default_timeout_ms = 30000
budget_lease_calls = 8          # a budget reservation covers this many calls like it (1: one each)

[tools]
command_timeout_ms = 300000     # run_command, verify and git, each call (the sandbox is killed)
command_output_bytes = 65536    # kept of stdout and of stderr each
command_memory_mb = 2048
command_max_processes = 512
protected_branches = ["main", "master"]   # agents never commit here
fetch_timeout_ms = 15000
fetch_max_bytes = 262144
fetch_max_redirects = 5
fetch_allowed_addresses = []    # private ranges fetch_url may reach anyway, e.g. ["10.1.2.0/24"]
process_max_per_agent = 4       # long-running processes (process_start) alive at once, per agent
process_lifetime_ms = 3600000   # a process is killed after this long
process_log_bytes = 262144      # the newest output kept per process (process_logs)
process_stop_grace_ms = 5000    # process_stop waits this long after SIGTERM before SIGKILL

# Model providers and aliases. Nothing is configured by default: agents that call a model
# get KEEL_MODEL_UNKNOWN until a provider and an alias exist. Two examples:
#
# [models.providers.openai]
# kind = "openai-compatible"          # also vLLM, llama.cpp, LM Studio, Ollama's /v1
# base_url = "https://api.openai.com/v1"
# api_key_secret = "openai_api_key"   # in secrets.toml or KEEL_SECRET_OPENAI_API_KEY
# max_tokens_field = "max_completion_tokens"
#
# [models.providers.local]
# kind = "ollama"                     # http://127.0.0.1:11434 unless base_url says otherwise
#
# [models.aliases]
# default = ["openai/gpt-4o-mini", "local/llama3.1"]   # fails over in this order

[agents]
development = false     # accept unsigned agent manifests (never with --production)
# Publishers whose signed manifests this node deploys (keel keygen prints the entry):
# [[agents.trusted_keys]]
# name = "my-team"
# public_key = "<base64 from keel keygen>"

[runtime]
production = false      # refuse to start without every isolation layer (also --production, KEEL_PRODUCTION=1)
sandbox = "auto"        # auto: every layer this host offers; off: plain child processes (development only)
max_concurrent_runs = 16
worker_memory_mb = 256   # the most memory a worker may have; larger limits.memoryMb are refused
heartbeat_interval_ms = 1000
watchdog_timeout_ms = 10000
restart_budget = 10     # restarts in a row of one agent before it stays crashed
restart_window_seconds = 60  # a worker that ran this long before it crashed starts a new row

[robotics]
enabled = false         # drive the simulated robot body (control loop, e-stop, hal.* syscalls)
# world_file = "worlds/yard.json"   # the sim world; absent: the built-in demo yard
rate_hz = 100           # control loop rate (up to 1000)
command_timeout_ms = 500   # a velocity command not refreshed within this long is dropped
realtime_priority = 40  # SCHED_FIFO for the control loop thread (0: normal priority)
robot_id = "rover-1"

[robotics.safety]
max_linear = 0.8        # m/s
max_angular = 1.5       # rad/s
max_linear_acceleration = 1
max_angular_acceleration = 3
acceleration_window_seconds = 0.5
# geofence = [[-10, -10], [10, -10], [10, 10], [-10, 10]]
collision_horizon_seconds = 1.5
footprint_radius = 0.25
safety_margin = 0.05
manual_override_ms = 5000
`;
