/**
 * The one module that reads the environment and, through its two helpers
 * (`read-private-toml.ts`, `collect-secrets.ts`), the configuration and secrets files. It validates everything
 * with a schema, freezes the result and hands it to the composition root; nothing else in
 * Keel reads `process.env` or the config files.
 */

import { createHash, randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { z } from 'zod';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import { assertPrivate } from '../../platform/files/private-mode.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import { collectSecrets } from './collect-secrets.ts';
import {
  type Configuration,
  type ConfigurationFile,
  ConfigurationFileSchema,
} from './configuration-schema.ts';
import { toModelsConfiguration } from './models-configuration.ts';
import { readPrivateToml, statOrUndefined } from './read-private-toml.ts';
import { toRoboticsConfiguration } from './robotics-configuration.ts';
import { toAgentsConfiguration, toRuntimeConfiguration } from './runtime-configuration.ts';
import { SecretStore } from './secrets.ts';

export type Environment = Readonly<Record<string, string | undefined>>;

export interface ConfigurationOverrides {
  readonly host?: string;
  readonly port?: number;
  readonly logLevel?: string;
  readonly logFormat?: string;
  /** `--production`: refuse to start without every isolation layer. */
  readonly production?: boolean;
  /** `--development`: accept unsigned agent manifests. */
  readonly development?: boolean;
}

export interface LoadConfigurationOptions {
  /** `--data-dir`; else `KEEL_HOME`; else `~/.keel`. */
  readonly dataDirectory?: string;
  /** Command-line values; they win over the environment, which wins over the file. */
  readonly overrides?: ConfigurationOverrides;
  readonly environment?: Environment;
  readonly homeDirectory?: string;
  /** The uid that must own the data directory and its files (default: this process's). */
  readonly uid?: number;
}

export interface LoadedConfiguration {
  readonly configuration: Configuration;
  readonly secrets: SecretStore;
  /** What does not exist yet; `claimDataDirectory` creates it. */
  readonly missing: {
    readonly directory: boolean;
    readonly configFile: boolean;
    readonly secretsFile: boolean;
  };
  /** True when no audit key existed and a new one was made (persisted by initialisation). */
  readonly generatedAuditKey: boolean;
  /** SHA-256 over the configuration and the names of the secrets (never their values). */
  readonly digest: string;
}

/**
 * The name of the secret that keys the audit hash chain.
 */
export const AUDIT_KEY_SECRET = 'audit_key';

const ENVIRONMENT_OVERRIDES = [
  { variable: 'KEEL_HOST', section: 'node', key: 'host', type: 'string' },
  { variable: 'KEEL_PORT', section: 'node', key: 'port', type: 'integer' },
  { variable: 'KEEL_LOG_LEVEL', section: 'log', key: 'level', type: 'string' },
  { variable: 'KEEL_LOG_FORMAT', section: 'log', key: 'format', type: 'string' },
  { variable: 'KEEL_PRODUCTION', section: 'runtime', key: 'production', type: 'boolean' },
] as const;

/**
 * The executable search path (`PATH`) that probes and child processes may use.
 *
 * @example
 * ```ts
 * detectSandbox({ searchPath: executableSearchPath() });
 * ```
 */
export function executableSearchPath(environment: Environment = process.env): string {
  return nonEmpty(environment.PATH) ?? '/usr/local/bin:/usr/bin:/bin';
}

/**
 * Resolves the data directory from the flag, `KEEL_HOME` or the home directory.
 *
 * @example
 * ```ts
 * resolveDataDirectory({ dataDirectory: './data' }); // '/home/ana/project/data'
 * ```
 */
export function resolveDataDirectory(options: LoadConfigurationOptions = {}): string {
  const environment = options.environment ?? process.env;
  const chosen =
    options.dataDirectory ??
    nonEmpty(environment.KEEL_HOME) ??
    join(options.homeDirectory ?? homedir(), '.keel');
  return resolve(chosen);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.length === 0 ? undefined : value;
}

function applyEnvironment(
  raw: Record<string, unknown>,
  environment: Environment,
  sources: Map<string, string>,
): void {
  for (const override of ENVIRONMENT_OVERRIDES) {
    const text = nonEmpty(environment[override.variable]);
    if (text === undefined) continue;
    let value: unknown = text;
    if (override.type === 'boolean') {
      if (!['0', '1', 'true', 'false'].includes(text)) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `${override.variable} must be 1 or 0 (true or false), got '${text}'`,
        );
      }
      value = text === '1' || text === 'true';
    }
    if (override.type === 'integer') {
      value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
      if (Number.isNaN(value)) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `${override.variable} must be a whole number, got '${text}'`,
        );
      }
    }
    setIn(raw, override.section, override.key, value);
    sources.set(`${override.section}.${override.key}`, override.variable);
  }
}

function applyOverrides(
  raw: Record<string, unknown>,
  overrides: ConfigurationOverrides,
  sources: Map<string, string>,
): void {
  const table: Array<[keyof ConfigurationOverrides, string, string, string]> = [
    ['host', 'node', 'host', '--host'],
    ['port', 'node', 'port', '--port'],
    ['logLevel', 'log', 'level', '--log-level'],
    ['logFormat', 'log', 'format', '--log-format'],
    ['production', 'runtime', 'production', '--production'],
    ['development', 'agents', 'development', '--development'],
  ];
  for (const [option, section, key, flag] of table) {
    const value = overrides[option];
    if (value === undefined) continue;
    setIn(raw, section, key, value);
    sources.set(`${section}.${key}`, flag);
  }
}

function setIn(raw: Record<string, unknown>, section: string, key: string, value: unknown): void {
  const existing = raw[section];
  const table =
    typeof existing === 'object' && existing !== null && !Array.isArray(existing)
      ? (existing as Record<string, unknown>)
      : {};
  table[key] = value;
  raw[section] = table;
}

function describeIssue(
  error: z.ZodError,
  origin: string,
  sources: ReadonlyMap<string, string>,
): KeelError {
  const issue = error.issues[0];
  const path = issue?.path.join('.') ?? '';
  const source = sources.get(path) ?? `${path === '' ? '' : `${path} in `}${origin}`;
  const message =
    issue?.code === 'unrecognized_keys'
      ? `unknown key(s) ${issue.keys.join(', ')}`
      : issue?.message;
  return new KeelError('KEEL_CONFIG_INVALID', `${source}: ${message ?? 'invalid'}`, {
    details: {
      issues: error.issues.map((entry) => ({ path: entry.path.join('.'), message: entry.message })),
    },
    hint: `fix ${source}; \`keel start --help\` lists the flags and ${origin} documents the keys`,
  });
}

/**
 * Runs a validation step and, if it throws, removes secret values from the error: a secret
 * pasted into the wrong variable must not be printed back in the message about it.
 */
function withSecretsRedacted<T>(secrets: ReadonlyMap<string, string>, step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (!isKeelError(error)) throw error;
    const redactor = new SecretRedactor(secrets.values());
    throw new KeelError(error.code, redactor.redact(error.message), {
      hint: redactor.redact(error.hint),
      details: JSON.parse(redactor.redact(JSON.stringify(error.details))) as Record<
        string,
        unknown
      >,
    });
  }
}

/**
 * Decodes the audit key (hex, at least 32 bytes), or says exactly what is wrong with it.
 *
 * @example
 * ```ts
 * const key = decodeAuditKey(secrets.require('audit_key').reveal());
 * ```
 */
export function decodeAuditKey(value: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2}){32,}$/i.test(value)) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `the secret ${AUDIT_KEY_SECRET} must be at least 64 hexadecimal characters`,
      {
        hint: 'generate one with: openssl rand -hex 32',
      },
    );
  }
  return Buffer.from(value, 'hex');
}

function toConfiguration(file: ConfigurationFile, dataDirectory: string): Configuration {
  const tls =
    file.tls.cert_file !== undefined && file.tls.key_file !== undefined
      ? {
          certFile: resolve(dataDirectory, file.tls.cert_file),
          keyFile: resolve(dataDirectory, file.tls.key_file),
        }
      : null;
  if ((file.tls.cert_file === undefined) !== (file.tls.key_file === undefined)) {
    throw new KeelError('KEEL_CONFIG_INVALID', '[tls] needs both cert_file and key_file');
  }
  return deepFreeze({
    dataDirectory,
    configFile: join(dataDirectory, 'config.toml'),
    secretsFile: join(dataDirectory, 'secrets.toml'),
    databaseFile: join(dataDirectory, 'keel.db'),
    lockFile: join(dataDirectory, 'keel.lock'),
    node: {
      name: file.node.name,
      host: file.node.host,
      port: file.node.port,
      maxBodyBytes: file.node.max_body_bytes,
    },
    log: { level: file.log.level, format: file.log.format },
    storage: { synchronous: file.storage.synchronous },
    tls,
    tools: {
      commands: {
        timeoutMs: file.tools.command_timeout_ms,
        maxOutputBytes: file.tools.command_output_bytes,
        memoryBytes: file.tools.command_memory_mb * 1024 * 1024,
        maxProcesses: file.tools.command_max_processes,
        protectedBranches: file.tools.protected_branches,
      },
      fetch: {
        timeoutMs: file.tools.fetch_timeout_ms,
        maxBytes: file.tools.fetch_max_bytes,
        maxRedirects: file.tools.fetch_max_redirects,
        allowedAddresses: file.tools.fetch_allowed_addresses,
      },
      processes: {
        maxPerAgent: file.tools.process_max_per_agent,
        lifetimeMs: file.tools.process_lifetime_ms,
        logBytes: file.tools.process_log_bytes,
        stopGraceMs: file.tools.process_stop_grace_ms,
      },
    },
    approvals: {
      ttlMs: file.approvals.ttl_seconds * 1000,
      sweepIntervalMs: file.approvals.sweep_interval_seconds * 1000,
      rules: file.approvals.rules.map((rule) => ({
        kind: rule.kind,
        resource: rule.resource,
        trustLevels: rule.trust_levels,
        reason: rule.reason ?? null,
      })),
    },
    gate: {
      maxIntentBytes: file.gate.max_intent_bytes,
      defaultTimeoutMs: file.gate.default_timeout_ms,
      budgetLeaseCalls: file.gate.budget_lease_calls,
    },
    doctor: { services: file.doctor.services },
    models: toModelsConfiguration(file.models),
    agents: toAgentsConfiguration(file.agents),
    runtime: toRuntimeConfiguration(file.runtime),
    robotics: toRoboticsConfiguration(file.robotics, file.log.level),
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

/**
 * Reads, validates and freezes the node's configuration and secrets without writing anything.
 * A missing data directory or file is reported in `missing` (defaults apply); a present one
 * must be private (0700 directory, 0600 files, owned by this user) and valid.
 *
 * @example
 * ```ts
 * const loaded = await loadConfiguration({ dataDirectory: '/srv/keel', overrides: { port: 0 } });
 * ```
 */
export async function loadConfiguration(
  options: LoadConfigurationOptions = {},
): Promise<LoadedConfiguration> {
  const environment = options.environment ?? process.env;
  const uid = options.uid ?? process.getuid?.();
  const dataDirectory = resolveDataDirectory(options);
  const directoryStats = await statOrUndefined(dataDirectory);
  if (directoryStats !== undefined) {
    if (!directoryStats.isDirectory()) {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `the data directory ${dataDirectory} is not a directory`,
        {
          hint: 'choose another --data-dir or move that file away',
        },
      );
    }
    assertPrivate(directoryStats, dataDirectory, 'the data directory', uid);
  }
  const configFile = join(dataDirectory, 'config.toml');
  const secretsFile = join(dataDirectory, 'secrets.toml');
  const rawFile =
    directoryStats === undefined
      ? undefined
      : await readPrivateToml(configFile, 'config file', uid, false);
  const rawSecrets =
    directoryStats === undefined
      ? undefined
      : await readPrivateToml(secretsFile, 'secrets file', uid, true);

  const raw: Record<string, unknown> = structuredClone(
    (rawFile as Record<string, unknown> | undefined) ?? {},
  );
  const secretValues = await collectSecrets(rawSecrets, secretsFile, environment);
  const configuration = withSecretsRedacted(secretValues, () => {
    const sources = new Map<string, string>();
    applyEnvironment(raw, environment, sources);
    applyOverrides(raw, options.overrides ?? {}, sources);
    const parsed = ConfigurationFileSchema.safeParse(raw);
    if (!parsed.success) throw describeIssue(parsed.error, configFile, sources);
    if (parsed.data.runtime.production && parsed.data.agents.development) {
      const from = (path: string): string => sources.get(path) ?? configFile;
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `production mode (${from('runtime.production')}) cannot accept unsigned manifests ([agents] development from ${from('agents.development')})`,
        {
          hint: 'sign the manifests with `keel agent sign` and turn development off, or start without --production',
        },
      );
    }
    const { heartbeat_interval_ms: heartbeat, watchdog_timeout_ms: watchdog } = parsed.data.runtime;
    if (watchdog < 2 * heartbeat) {
      const from = (path: string): string => sources.get(path) ?? configFile;
      // Otherwise every idle worker is killed between two heartbeats, and restarted in a loop.
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `runtime.watchdog_timeout_ms (${watchdog}, from ${from('runtime.watchdog_timeout_ms')}) must be at least twice runtime.heartbeat_interval_ms (${heartbeat}, from ${from('runtime.heartbeat_interval_ms')})`,
        { hint: 'raise the watchdog timeout or send heartbeats more often' },
      );
    }
    return toConfiguration(parsed.data, dataDirectory);
  });
  const auditKey = secretValues.get(AUDIT_KEY_SECRET);
  const generatedAuditKey = auditKey === undefined && rawSecrets === undefined;
  if (auditKey !== undefined) decodeAuditKey(auditKey);
  else if (generatedAuditKey) secretValues.set(AUDIT_KEY_SECRET, randomBytes(32).toString('hex'));
  else {
    throw new KeelError(
      'KEEL_AUDIT_KEY_MISSING',
      `the secrets file ${secretsFile} has no ${AUDIT_KEY_SECRET}`,
      {
        hint: `add ${AUDIT_KEY_SECRET} = "<64 hex characters>" (openssl rand -hex 32) to it, or set KEEL_SECRET_AUDIT_KEY; use the original key if this node already has an audit log`,
      },
    );
  }
  const secrets = new SecretStore(secretValues);
  const digest = createHash('sha256')
    .update(canonicalJson({ configuration, secrets: secrets.names() }))
    .digest('hex');
  return {
    configuration,
    secrets,
    missing: {
      directory: directoryStats === undefined,
      configFile: rawFile === undefined,
      secretsFile: rawSecrets === undefined,
    },
    generatedAuditKey,
    digest,
  };
}
