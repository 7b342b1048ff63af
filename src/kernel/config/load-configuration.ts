/**
 * The one module that reads configuration files and the environment. It validates everything
 * with a schema, freezes the result and hands it to the composition root; nothing else in
 * Keel reads `process.env` or the config files.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { constants, type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import { assertPrivate } from '../../platform/files/private-mode.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import {
  type Configuration,
  type ConfigurationFile,
  ConfigurationFileSchema,
} from './configuration-schema.ts';
import { SECRET_NAME_PATTERN, SecretStore } from './secrets.ts';

export type Environment = Readonly<Record<string, string | undefined>>;

export interface ConfigurationOverrides {
  readonly host?: string;
  readonly port?: number;
  readonly logLevel?: string;
  readonly logFormat?: string;
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

export const AUDIT_KEY_SECRET = 'audit_key';
const MAX_SECRET_BYTES = 64 * 1024;
const MAX_CONFIG_BYTES = 1024 * 1024;

const ENVIRONMENT_OVERRIDES = [
  { variable: 'KEEL_HOST', section: 'node', key: 'host', type: 'string' },
  { variable: 'KEEL_PORT', section: 'node', key: 'port', type: 'integer' },
  { variable: 'KEEL_LOG_LEVEL', section: 'log', key: 'level', type: 'string' },
  { variable: 'KEEL_LOG_FORMAT', section: 'log', key: 'format', type: 'string' },
] as const;

/** The executable search path (`PATH`) that probes and child processes may use. */
export function executableSearchPath(environment: Environment = process.env): string {
  return nonEmpty(environment.PATH) ?? '/usr/local/bin:/usr/bin:/bin';
}

/** Resolves the data directory from the flag, `KEEL_HOME` or the home directory. */
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

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `${path} cannot exist: a parent of it is a file`,
        {
          cause: error,
        },
      );
    }
    if (code === 'EACCES') {
      throw new KeelError(
        'KEEL_DATA_DIR_UNWRITABLE',
        `${path} cannot be read (permission denied)`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

async function readPrivateToml(
  path: string,
  what: string,
  uid: number | undefined,
  holdsSecrets: boolean,
): Promise<unknown> {
  let handle: FileHandle;
  try {
    // No symbolic links, and the checks apply to the very file that is read (no window
    // between checking one path and reading another).
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      throw new KeelError('KEEL_CONFIG_PERMISSIONS', `${what} ${path} is a symbolic link`, {
        hint: `replace the link with the file itself (Keel reads only regular files it owns)`,
      });
    }
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${what} ${path} cannot be read (${code ?? String(error)})`,
      {
        cause: error,
      },
    );
  }
  let text: string;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new KeelError('KEEL_CONFIG_INVALID', `${what} ${path} is not a regular file`);
    }
    assertPrivate(stats, path, what, uid);
    if (stats.size > MAX_CONFIG_BYTES) {
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `${what} ${path} is larger than ${MAX_CONFIG_BYTES} bytes`,
      );
    }
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  try {
    return parseToml(text);
  } catch (error) {
    const where =
      error instanceof TomlError ? ` at line ${error.line}, column ${error.column}` : '';
    const hint = `fix ${path}, or move it away to get a fresh default`;
    if (holdsSecrets) {
      // The parser's message quotes the offending line, which may hold a secret nobody can
      // redact yet: say only where.
      throw new KeelError('KEEL_CONFIG_INVALID', `${what} ${path} is not valid TOML${where}`, {
        hint,
      });
    }
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${what} ${path} is not valid TOML${where}: ${reason}`,
      {
        cause: error,
        hint,
      },
    );
  }
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

async function readSecretFile(variable: string, path: string): Promise<string> {
  const stats = await statOrUndefined(path);
  if (stats === undefined || !stats.isFile()) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${variable} names ${path}, which is not a readable file`,
    );
  }
  if (stats.size > MAX_SECRET_BYTES) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      `${variable} names a file larger than ${MAX_SECRET_BYTES} bytes`,
    );
  }
  // Readable by others is the operator's choice (mounted secrets are often 0444); writable by
  // others is not: anyone could swap the secret.
  if ((stats.mode & 0o022) !== 0) {
    throw new KeelError(
      'KEEL_CONFIG_PERMISSIONS',
      `${variable} names ${path}, which others can write`,
      {
        hint: `run: chmod go-w '${path}'`,
      },
    );
  }
  return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
}

async function collectSecrets(
  fileSecrets: unknown,
  secretsFile: string,
  environment: Environment,
): Promise<Map<string, string>> {
  const secrets = new Map<string, string>();
  if (fileSecrets !== undefined) {
    for (const [name, value] of Object.entries(fileSecrets as Record<string, unknown>)) {
      if (!SECRET_NAME_PATTERN.test(name)) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `secrets file ${secretsFile}: ${name} is not a valid secret name`,
          {
            hint: 'secret names are lowercase letters, digits and underscores, starting with a letter',
          },
        );
      }
      if (
        typeof value !== 'string' ||
        value.length === 0 ||
        Buffer.byteLength(value) > MAX_SECRET_BYTES
      ) {
        throw new KeelError(
          'KEEL_CONFIG_INVALID',
          `secrets file ${secretsFile}: ${name} must be a non-empty string`,
        );
      }
      secrets.set(name, value);
    }
  }
  for (const [variable, value] of Object.entries(environment)) {
    if (!variable.startsWith('KEEL_SECRET_') || value === undefined) continue;
    const fromFile = variable.endsWith('_FILE');
    const name = variable
      .slice('KEEL_SECRET_'.length, fromFile ? -'_FILE'.length : undefined)
      .toLowerCase();
    if (!SECRET_NAME_PATTERN.test(name)) {
      throw new KeelError('KEEL_CONFIG_INVALID', `${variable} does not name a valid secret`);
    }
    const secret = fromFile ? await readSecretFile(variable, value) : value;
    if (secret.length === 0) throw new KeelError('KEEL_CONFIG_INVALID', `${variable} is empty`);
    secrets.set(name, secret);
  }
  return secrets;
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

/** Decodes the audit key (hex, at least 32 bytes), or says exactly what is wrong with it. */
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
    },
    doctor: { services: file.doctor.services },
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
