import { ExpiringCache } from '../../platform/cache/expiring-cache.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type {
  AgentDeployment,
  GrantReplacement,
  GrantStore,
  StoredGrant,
} from '../../platform/storage/ports/grant-store.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { AuditEntry, AuditLog } from '../audit/audit-log.ts';
import {
  type CapabilityDecision,
  type CompiledGrant,
  compileGrant,
  matchCapability,
  parseCapabilityGrant,
} from './capability-grant.ts';

/**
 * Step 2 of the gate: deny by default. Holds each agent's active grants compiled (refreshed at
 * most once a second, and at once when the kernel grants or revokes), and issues and revokes
 * grants for operators, auditing each.
 *
 * @example
 * ```ts
 * await capabilities.grant(agentId, { kind: 'tool.call', resource: 'shell', limits: { commands: ['npm test'] } }, 'operator:ana');
 * ```
 */
export class CapabilityService {
  readonly #store: GrantStore;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #cache: ExpiringCache<string, readonly CompiledGrant[]>;

  constructor(dependencies: {
    readonly store: GrantStore;
    readonly audit: AuditLog;
    readonly clock: Clock;
    readonly logger: Logger;
    readonly cacheTtlMs?: number;
  }) {
    this.#store = dependencies.store;
    this.#audit = dependencies.audit;
    this.#clock = dependencies.clock;
    this.#logger = dependencies.logger;
    this.#cache = new ExpiringCache(dependencies.cacheTtlMs ?? 1_000, () =>
      dependencies.clock.monotonic(),
    );
  }

  #grantsOf(agentId: string): Promise<readonly CompiledGrant[]> {
    return this.#cache.get(agentId, () => this.#loadGrants(agentId));
  }

  async #loadGrants(agentId: string): Promise<readonly CompiledGrant[]> {
    const stored = await this.#store.listActive(agentId, this.#clock.now());
    const grants: CompiledGrant[] = [];
    for (const grant of stored) {
      try {
        grants.push(compileGrant(grant.id, grant.grant, grant.expiresAt));
      } catch (error) {
        // A stored grant that no longer validates grants nothing; say so loudly.
        this.#logger.error(
          { err: error, grantId: grant.id, agentId },
          'ignoring an invalid stored capability grant',
        );
      }
    }
    return grants;
  }

  /** Whether an agent's grants allow an intent. */
  async check(
    agentId: string,
    intent: {
      readonly kind: string;
      readonly resource: string;
      readonly params: Readonly<Record<string, unknown>>;
    },
  ): Promise<CapabilityDecision> {
    return matchCapability(await this.#grantsOf(agentId), intent, this.#clock.now());
  }

  /** Issues a validated grant (audited). */
  async grant(
    agentId: string,
    grant: unknown,
    actor: string,
    options: { readonly expiresAt?: number } = {},
  ): Promise<StoredGrant> {
    const parsed = parseCapabilityGrant(grant);
    const now = this.#clock.now();
    if (options.expiresAt !== undefined && options.expiresAt <= now) {
      throw new KeelError('KEEL_CAPABILITY_INVALID', 'a grant must expire in the future');
    }
    const stored = await this.#store.add({
      id: createId('grt'),
      agentId,
      grant: parsed as unknown as JsonObject,
      issuedAt: now,
      issuedBy: actor,
      expiresAt: options.expiresAt ?? null,
    });
    this.#cache.delete(agentId);
    await this.#audit.record(grantedEntry(stored, actor));
    return stored;
  }

  /** Revokes a grant (audited); effective for the next syscall. */
  async revoke(grantId: string, actor: string): Promise<StoredGrant> {
    const revoked = await this.#store.revoke(grantId, actor, this.#clock.now());
    this.#cache.delete(revoked.agentId);
    await this.#audit.record(revokedEntry(revoked, actor));
    return revoked;
  }

  /**
   * Replaces all of an agent's active grants with `grants` as one storage request, so that no
   * syscall is ever checked against half of the change (a deploy, a removal with `[]`). Every
   * grant is validated before anything is written; the revocations and the new grants are
   * audited together. With `deployment`, the agent's metadata and trust level change in the
   * same request (the caller forgets the agent's cached record).
   */
  async replace(
    agentId: string,
    grants: readonly unknown[],
    actor: string,
    deployment?: AgentDeployment,
  ): Promise<GrantReplacement> {
    const parsed = grants.map((grant) => parseCapabilityGrant(grant));
    const now = this.#clock.now();
    const replacement = await this.#store.replace(
      agentId,
      parsed.map((grant) => ({
        id: createId('grt'),
        agentId,
        grant: grant as unknown as JsonObject,
        issuedAt: now,
        issuedBy: actor,
        expiresAt: null,
      })),
      actor,
      now,
      deployment,
    );
    this.#cache.delete(agentId);
    await this.#audit.recordAll([
      ...replacement.revoked.map((revoked) => revokedEntry(revoked, actor)),
      ...replacement.added.map((added) => grantedEntry(added, actor)),
    ]);
    return replacement;
  }

  list(agentId: string): Promise<readonly StoredGrant[]> {
    return this.#store.listAll(agentId);
  }
}

/** The audit entry of an issued grant, named by its kind and (unless any) its resource. */
function grantedEntry(grant: StoredGrant, actor: string): AuditEntry {
  const { kind, resource } = grant.grant;
  return {
    kind: 'capability.grant',
    actor,
    agentId: grant.agentId,
    subject:
      resource === undefined || resource === '*'
        ? String(kind)
        : `${String(kind)} ${String(resource)}`,
    outcome: 'granted',
    data: { grantId: grant.id, grant: grant.grant, expiresAt: grant.expiresAt },
  };
}

/** The audit entry of a revoked grant. */
function revokedEntry(grant: StoredGrant, actor: string): AuditEntry {
  return {
    kind: 'capability.revoke',
    actor,
    agentId: grant.agentId,
    outcome: 'revoked',
    data: { grantId: grant.id, grant: grant.grant },
  };
}
