import { stat } from 'node:fs/promises';
import { auditKeyMatches } from '../../kernel/audit/audit-log.ts';
import {
  AUDIT_KEY_SECRET,
  decodeAuditKey,
  type LoadConfigurationOptions,
  type LoadedConfiguration,
  loadConfiguration,
  resolveDataDirectory,
} from '../../kernel/config/load-configuration.ts';
import { toKeelError } from '../../platform/errors/keel-error.ts';
import { inspectLockFile } from '../../platform/files/lock-file.ts';
import {
  DEFAULT_LOCAL_SERVICES,
  probeTcpServices,
  type TcpServiceProbe,
} from '../../platform/net/probe-tcp-service.ts';
import {
  detectSandbox,
  SANDBOX_LAYERS,
  type SandboxReport,
} from '../../platform/sandbox/detect-sandbox.ts';
import { findSandboxTools } from '../../platform/sandbox/sandbox-host.ts';
import { openSqliteStorage } from '../../platform/storage/sqlite/sqlite-storage.ts';
import { createModelProviders } from '../../services/models/model-service.ts';
import type { ModelProviderV1 } from '../../services/models/provider/model-provider.ts';
import { KEEL_VERSION } from '../keel-version.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'info';

export interface DoctorCheck {
  readonly area: 'runtime' | 'data' | 'storage' | 'models' | 'sandbox' | 'service';
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
}

export interface DoctorReport {
  /** False when something would stop a node from starting or from working correctly. */
  readonly ok: boolean;
  readonly version: string;
  readonly node: string;
  readonly dataDirectory: string;
  readonly checks: readonly DoctorCheck[];
  readonly sandbox: SandboxReport;
  readonly services: readonly TcpServiceProbe[];
}

const REQUIRED_NODE_MAJOR = 24;

/**
 * One check per configured model provider: it must be buildable (https off loopback, its API
 * key secret set) and answer its health check; and a word when no alias is configured.
 */
async function modelChecks(
  loaded: LoadedConfiguration,
  signal: AbortSignal | undefined,
): Promise<DoctorCheck[]> {
  const { models } = loaded.configuration;
  if (Object.keys(models.aliases).length === 0) {
    return [
      {
        area: 'models',
        name: 'models',
        status: 'info',
        detail:
          'no model alias is configured: agents that call a model get KEEL_MODEL_UNKNOWN; add a provider and an alias under [models] (docs/models.md)',
      },
    ];
  }
  let providers: ReadonlyMap<string, ModelProviderV1>;
  try {
    providers = createModelProviders(models, loaded.secrets);
  } catch (error) {
    const keelError = toKeelError(error);
    return [
      {
        area: 'models',
        name: 'providers',
        status: 'fail',
        detail: `${keelError.message}; ${keelError.hint}`,
      },
    ];
  }
  return Promise.all(
    [...providers.values()].map(async (provider): Promise<DoctorCheck> => {
      const timeout = AbortSignal.timeout(5_000);
      try {
        await provider.doHealthCheck({
          signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
        });
        return {
          area: 'models',
          name: provider.id,
          status: 'ok',
          detail: `${provider.kind} answers its health check`,
        };
      } catch (error) {
        return {
          area: 'models',
          name: provider.id,
          status: 'warn',
          detail: `${provider.kind} health check failed: ${toKeelError(error).message} (calls fail over to the next provider of an alias)`,
        };
      }
    }),
  );
}

async function storageChecks(loaded: LoadedConfiguration): Promise<DoctorCheck[]> {
  const path = loaded.configuration.databaseFile;
  const exists = await stat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
  if (!exists) {
    return [
      {
        area: 'storage',
        name: 'database',
        status: 'info',
        detail: `${path} does not exist yet; keel start creates it`,
      },
    ];
  }
  try {
    const storage = await openSqliteStorage({ path, readOnly: true, migrationMode: 'inspect' });
    try {
      const [check, migrations, entries] = await Promise.all([
        storage.quickCheck(),
        storage.migrationStatus(),
        storage.audit.count(),
      ]);
      const pending = migrations.filter((migration) => migration.appliedAt === null).length;
      const keyMatches = loaded.generatedAuditKey
        ? entries > 0
          ? false
          : undefined
        : await auditKeyMatches(
            storage.audit,
            decodeAuditKey(loaded.secrets.require(AUDIT_KEY_SECRET).reveal()),
          );
      const keyCheck: DoctorCheck[] =
        keyMatches === undefined
          ? []
          : [
              {
                area: 'storage',
                name: 'audit key',
                status: keyMatches ? 'ok' : 'fail',
                detail: keyMatches
                  ? 'the audit key wrote the latest entry'
                  : 'the audit key is missing or is not the one that wrote the audit log; restore the original audit_key',
              },
            ];
      return [
        ...keyCheck,
        {
          area: 'storage',
          name: 'database',
          status: check === 'ok' ? 'ok' : 'fail',
          detail:
            check === 'ok'
              ? `${path}: sound (SQLite quick check), ${entries} audit entries`
              : `${path}: ${check}`,
        },
        {
          area: 'storage',
          name: 'schema',
          status: pending === 0 ? 'ok' : 'warn',
          detail:
            pending === 0
              ? `all ${migrations.length} migration(s) applied`
              : `${pending} of ${migrations.length} migration(s) pending; keel start or keel migrate applies them`,
        },
      ];
    } finally {
      await storage.close();
    }
  } catch (error) {
    const keelError = toKeelError(error);
    return [
      {
        area: 'storage',
        name: 'database',
        status: 'fail',
        detail: `${keelError.message}; ${keelError.hint}`,
      },
    ];
  }
}

/**
 * Examines the host and the data directory without changing anything: the Node.js version,
 * configuration, storage, a running node, the isolation layers agent workers can use, and the
 * services within reach.
 *
 * @example
 * ```ts
 * const report = await runDoctor({ dataDirectory: '/srv/keel' }, process.env.PATH ?? '');
 * ```
 */
export async function runDoctor(
  options: LoadConfigurationOptions,
  searchPath: string,
  signal?: AbortSignal,
): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const major = Number(process.versions.node.split('.')[0]);
  checks.push({
    area: 'runtime',
    name: 'node.js',
    status: major >= REQUIRED_NODE_MAJOR ? 'ok' : 'fail',
    detail: `${process.version}${major >= REQUIRED_NODE_MAJOR ? '' : `; Keel needs ${REQUIRED_NODE_MAJOR} or later (npm run setup)`}`,
  });

  const dataDirectory = resolveDataDirectory(options);
  let loaded: LoadedConfiguration | undefined;
  try {
    loaded = await loadConfiguration(options);
    checks.push({
      area: 'data',
      name: 'data directory',
      status: loaded.missing.directory ? 'info' : 'ok',
      detail: loaded.missing.directory
        ? `${dataDirectory} does not exist yet; keel start creates it (0700)`
        : `${dataDirectory} (private)`,
    });
    checks.push({
      area: 'data',
      name: 'configuration',
      status: 'ok',
      detail: `${loaded.missing.configFile ? 'defaults (no config.toml yet)' : loaded.configuration.configFile}; listens on ${loaded.configuration.node.host}:${loaded.configuration.node.port}`,
    });
    checks.push({
      area: 'data',
      name: 'secrets',
      status: 'ok',
      detail: `${loaded.secrets.names().length} secret(s): ${loaded.secrets.names().join(', ')}${loaded.generatedAuditKey ? ' (audit key not created yet)' : ''}`,
    });
  } catch (error) {
    const keelError = toKeelError(error);
    checks.push({
      area: 'data',
      name: 'configuration',
      status: 'fail',
      detail: `${keelError.message}; ${keelError.hint}`,
    });
  }

  if (loaded !== undefined) checks.push(...(await modelChecks(loaded, signal)));

  if (loaded !== undefined && !loaded.missing.directory) {
    checks.push(...(await storageChecks(loaded)));
    const holder = await inspectLockFile(loaded.configuration.lockFile).catch((error: unknown) => {
      checks.push({
        area: 'data',
        name: 'lock',
        status: 'warn',
        detail: `cannot read the lock: ${toKeelError(error).message}`,
      });
      return undefined;
    });
    checks.push({
      area: 'data',
      name: 'node',
      status: 'info',
      detail:
        holder === undefined
          ? 'no node is running on this data directory'
          : `a node is running (pid ${holder.pid})`,
    });
  }

  const services = loaded?.configuration.doctor.services ?? DEFAULT_LOCAL_SERVICES;
  const [sandbox, probes] = await Promise.all([
    detectSandbox(signal === undefined ? { searchPath } : { searchPath, signal }),
    probeTcpServices(
      services,
      signal === undefined ? { timeoutMs: 500 } : { timeoutMs: 500, signal },
    ),
  ]);
  for (const layer of SANDBOX_LAYERS) {
    const report = sandbox[layer];
    checks.push({
      area: 'sandbox',
      name: layer,
      status: report.available ? 'ok' : 'warn',
      detail: report.detail,
    });
  }
  const tools = await findSandboxTools(searchPath);
  checks.push({
    area: 'sandbox',
    name: 'prlimit',
    status: tools.prlimit === undefined ? 'warn' : 'ok',
    detail:
      tools.prlimit === undefined
        ? 'not found: workers get no open-file or core-dump limits (install util-linux); production refuses to start'
        : `at ${tools.prlimit}`,
  });
  if (process.getuid?.() === 0) {
    checks.push({
      area: 'sandbox',
      name: 'setpriv',
      status: tools.setpriv === undefined ? 'warn' : 'ok',
      detail:
        tools.setpriv === undefined
          ? 'not found: as root, no worker can drop to uid 65534, so none starts (install util-linux)'
          : `at ${tools.setpriv}; workers drop from root to uid 65534`,
    });
  }
  for (const probe of probes) {
    checks.push({
      area: 'service',
      name: probe.name,
      status: probe.reachable ? 'ok' : 'info',
      detail: `${probe.host}:${probe.port} ${probe.detail}`,
    });
  }
  return {
    ok: checks.every((check) => check.status !== 'fail'),
    version: KEEL_VERSION,
    node: process.version,
    dataDirectory,
    checks,
    sandbox,
    services: probes,
  };
}
