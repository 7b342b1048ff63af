import type { AgentsConfiguration } from '../../kernel/config/runtime-configuration.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import type { AgentRecord } from '../../platform/storage/ports/agent-store.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { KeyValueStore } from '../../platform/storage/ports/key-value-store.ts';
import {
  type AgentManifest,
  compareVersions,
  parseAgentManifest,
  trustLevelOf,
} from '../manifests/agent-manifest.ts';
import { BUILTIN_PROGRAM_NAMES } from '../manifests/builtin-program-names.ts';
import { publicKeyIdOf, verifySignedManifest } from '../manifests/manifest-signing.ts';
import { locateModule } from './module-location.ts';

/** What a deployed agent's record keeps of its manifest. */
export interface DeploymentMetadata {
  readonly manifest: AgentManifest;
  readonly digest: string;
  /** The publisher key that signed it; `null` when development mode accepted it unsigned. */
  readonly keyId: string | null;
  /** The program module's real path, for `program.module` manifests (see `locateModule`). */
  readonly modulePath: string | null;
}

export interface DeployResult {
  readonly agent: AgentRecord;
  readonly deployment: DeploymentMetadata;
  readonly outcome: 'created' | 'updated' | 'unchanged' | 'redeployed';
}

export interface AgentDeployerOptions {
  readonly kernel: Kernel;
  readonly keyValues: KeyValueStore;
  readonly configuration: AgentsConfiguration;
  /** Where relative `program.module` paths are found (the data directory's `agents/`). */
  readonly modulesDirectory: string;
  /** Keel's data directory, which no program module's folder may expose. */
  readonly dataDirectory: string;
  /** The most memory a worker may have (`[runtime] worker_memory_mb`). */
  readonly maxWorkerMemoryMb: number;
  /** Tools this node has; a manifest that allows another is refused. */
  readonly toolNames: () => readonly string[];
}

/** The id of the key an agent's deployed manifest was signed with; null if unsigned. */
function keyIdOf(record: AgentRecord): string | null {
  return typeof record.metadata.keyId === 'string' ? record.metadata.keyId : null;
}

/**
 * Reads the deployment a record carries (its manifest is parsed again: stored data is input).
 *
 * @example
 * ```ts
 * const { manifest } = deploymentOf(agentRecord);
 * ```
 */
export function deploymentOf(record: AgentRecord): DeploymentMetadata {
  const metadata = record.metadata;
  return {
    manifest: parseAgentManifest(metadata.manifest),
    digest: String(metadata.digest ?? ''),
    keyId: keyIdOf(record),
    modulePath: typeof metadata.modulePath === 'string' ? metadata.modulePath : null,
  };
}

/**
 * Deploys agent manifests: verifies the signature against the trusted publisher keys (unsigned
 * only in development mode), refuses a version older than — or equal to but different from —
 * the one deployed before (so an old signed manifest cannot be replayed), then registers or
 * updates the agent, replaces its capability grants with the manifest's, sets its budget, and
 * audits the deployment. A refusal is audited too.
 *
 * @example
 * ```ts
 * const { agent, outcome } = await deployer.deploy(JSON.parse(text), 'operator:local');
 * ```
 */
export class AgentDeployer {
  readonly #options: AgentDeployerOptions;

  constructor(options: AgentDeployerOptions) {
    this.#options = options;
  }

  /**
   * Why a deployment accepted earlier may not run on this node as it is configured now: its
   * signer's key left `[agents] trusted_keys` (`KEEL_MANIFEST_UNTRUSTED_KEY`), or it was
   * accepted unsigned and the node no longer runs in development mode
   * (`KEEL_MANIFEST_UNSIGNED`). `undefined` when it may run.
   */
  distrust(deployment: DeploymentMetadata): KeelError | undefined {
    const { configuration } = this.#options;
    const name = deployment.manifest.id;
    if (deployment.keyId === null) {
      if (configuration.development) return undefined;
      return new KeelError(
        'KEEL_MANIFEST_UNSIGNED',
        `agent ${name} was deployed unsigned in development mode, and this node is not in development mode`,
        {
          details: { agent: name },
          hint: `deploy a signed manifest of ${name} (keel agent sign), or start the node with --development`,
        },
      );
    }
    const trusted = configuration.trustedKeys.some(
      (key) => publicKeyIdOf(key.publicKey) === deployment.keyId,
    );
    if (trusted) return undefined;
    return new KeelError(
      'KEEL_MANIFEST_UNTRUSTED_KEY',
      `agent ${name} was signed by key ${deployment.keyId}, which is no longer in [agents] trusted_keys`,
      {
        details: { agent: name, keyId: deployment.keyId },
        hint: `deploy a manifest of ${name} signed by a trusted key, or trust the key again in config.toml`,
      },
    );
  }

  async deploy(value: unknown, actor: string): Promise<DeployResult> {
    try {
      return await this.#deploy(value, actor);
    } catch (error) {
      const failure = toKeelError(error);
      await this.#options.kernel.audit.record({
        kind: 'agent.deploy',
        actor,
        subject: manifestName(value),
        outcome: 'denied',
        code: failure.code,
        data: { reason: failure.message },
      });
      throw failure;
    }
  }

  async #deploy(value: unknown, actor: string): Promise<DeployResult> {
    const { kernel, configuration } = this.#options;
    const verified = verifySignedManifest(value, {
      trustedKeys: configuration.trustedKeys.map((key) => ({
        keyId: publicKeyIdOf(key.publicKey),
        publicKey: key.publicKey,
        name: key.name,
      })),
      allowUnsigned: configuration.development,
    });
    const { manifest, digest, keyId } = verified;
    const versionKey = `agents.version.${manifest.id}`;
    const previous = await this.#options.keyValues.get(versionKey);
    let sameAsBefore = false;
    if (typeof previous === 'object' && previous !== null && !Array.isArray(previous)) {
      const before = previous as { version?: unknown; digest?: unknown };
      const order = compareVersions(manifest.version, String(before.version));
      if (order < 0 || (order === 0 && before.digest !== digest)) {
        throw new KeelError(
          'KEEL_MANIFEST_DOWNGRADE',
          order < 0
            ? `${manifest.id} ${manifest.version} is older than the deployed ${String(before.version)}`
            : `${manifest.id} ${manifest.version} was deployed before with different content`,
          {
            details: {
              agent: manifest.id,
              version: manifest.version,
              deployed: String(before.version),
            },
          },
        );
      }
      sameAsBefore = order === 0;
    }
    const unknownTools = manifest.tools.filter((tool) => !this.#options.toolNames().includes(tool));
    if (unknownTools.length > 0) {
      throw new KeelError(
        'KEEL_MANIFEST_INVALID',
        `manifest tools: this node has no tool ${unknownTools.join(', ')}`,
        { details: { field: 'tools', unknown: unknownTools } },
      );
    }
    if (manifest.limits.memoryMb > this.#options.maxWorkerMemoryMb) {
      throw new KeelError(
        'KEEL_MANIFEST_INVALID',
        `manifest limits.memoryMb: ${manifest.limits.memoryMb} MiB is more than this node gives a worker (${this.#options.maxWorkerMemoryMb} MiB)`,
        {
          details: { field: 'limits.memoryMb' },
          hint: 'lower limits.memoryMb, or raise [runtime] worker_memory_mb in config.toml',
        },
      );
    }
    if (
      'builtin' in manifest.program &&
      !BUILTIN_PROGRAM_NAMES.includes(manifest.program.builtin)
    ) {
      throw new KeelError(
        'KEEL_MANIFEST_INVALID',
        `manifest program.builtin: this node has no program ${manifest.program.builtin} (it has ${BUILTIN_PROGRAM_NAMES.join(', ')})`,
        { details: { field: 'program.builtin' } },
      );
    }
    const modulePath = await this.#modulePath(manifest);
    const deployment: DeploymentMetadata = { manifest, digest, keyId, modulePath };
    const metadata = {
      manifest: manifest as unknown as JsonObject,
      digest,
      keyId,
      modulePath,
      deployedBy: actor,
    } satisfies JsonObject;
    const existing = await kernel.agents.getByName(manifest.id);
    // The same manifest signed by another key (a key rotated out of trust, or an agent
    // deployed unsigned in development and now signed) is deployed again: the record names
    // the key that is trusted now, and the agent can start under it.
    if (
      sameAsBefore &&
      existing !== undefined &&
      existing.state !== 'removed' &&
      keyIdOf(existing) === keyId
    ) {
      await kernel.audit.record({
        kind: 'agent.deploy',
        actor,
        agentId: existing.id,
        subject: manifest.id,
        outcome: 'unchanged',
        data: { version: manifest.version, digest, keyId },
      });
      return { agent: existing, deployment, outcome: 'unchanged' };
    }
    const trustLevel = trustLevelOf(manifest.trust);
    const grantedBy = `${actor} (manifest ${manifest.id}@${manifest.version})`;
    // The manifest's budget is in place before its grants: a crash between the two leaves the
    // grants of before under the limits of now, never new grants without their limits.
    const limit = async (agentId: string): Promise<void> => {
      if (manifest.budgets?.agent !== undefined) {
        await kernel.budgets.setLimits(`agent:${agentId}`, manifest.budgets.agent, actor);
      }
    };
    // A crash before the grants land leaves a new agent that may do nothing (deny by default).
    const target =
      existing ??
      (await kernel.agents.register({ name: manifest.id, trustLevel, metadata }, actor));
    await limit(target.id);
    // One storage request: the manifest, its grants and its version commit together or not at
    // all, and a syscall of a still-running worker never meets half of the change.
    const replaced = await kernel.capabilities.replace(
      target.id,
      manifest.capabilities,
      grantedBy,
      {
        metadata,
        trustLevel,
        setting: { key: versionKey, value: { version: manifest.version, digest } },
      },
    );
    kernel.agents.forget(target.id);
    if (replaced.agent === undefined) {
      throw new KeelError('KEEL_INTERNAL', `deploying ${manifest.id} returned no agent record`);
    }
    const agent: AgentRecord = replaced.agent;
    const outcome = existing === undefined ? 'created' : sameAsBefore ? 'redeployed' : 'updated';
    await kernel.audit.record({
      kind: 'agent.deploy',
      actor,
      agentId: agent.id,
      subject: manifest.id,
      outcome,
      data: {
        version: manifest.version,
        digest,
        keyId,
        trust: manifest.trust,
        capabilities: manifest.capabilities.length,
      },
    });
    return { agent, deployment, outcome };
  }

  async #modulePath(manifest: AgentManifest): Promise<string | null> {
    if (!('module' in manifest.program)) return null;
    const location = await locateModule(manifest.program.module, this.#options);
    return location.path;
  }
}

/** The agent name a deploy request claims (its manifest's `id`), before anything is checked. */
export function manifestName(value: unknown): string | null {
  const candidate =
    typeof value === 'object' && value !== null && 'manifest' in value
      ? (value as { manifest: unknown }).manifest
      : value;
  if (typeof candidate !== 'object' || candidate === null) return null;
  const id = (candidate as { id?: unknown }).id;
  return typeof id === 'string' ? id.slice(0, 64) : null;
}
