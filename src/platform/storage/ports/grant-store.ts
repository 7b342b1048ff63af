import type { AgentRecord, TrustLevel } from './agent-store.ts';
import type { JsonObject, JsonValue } from './json-value.ts';

export interface StoredGrant {
  readonly id: string;
  readonly agentId: string;
  /** The grant as data; the kernel validates it on the way in and on the way out. */
  readonly grant: JsonObject;
  readonly issuedAt: number;
  readonly issuedBy: string;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly revokedBy: string | null;
}

export interface NewGrant {
  readonly id: string;
  readonly agentId: string;
  readonly grant: JsonObject;
  readonly issuedAt: number;
  readonly issuedBy: string;
  readonly expiresAt: number | null;
}

/**
 * Capability grants per agent.
 *
 * @example
 * ```ts
 * const active = await storage.grants.listActive(agentId, now);
 * ```
 */
export interface GrantStore {
  /** `KEEL_NOT_FOUND` when the agent does not exist. */
  add(grant: NewGrant): Promise<StoredGrant>;
  get(id: string): Promise<StoredGrant | undefined>;
  /** `KEEL_NOT_FOUND` for an unknown id, `KEEL_CONFLICT` when already revoked. */
  revoke(id: string, revokedBy: string, now: number): Promise<StoredGrant>;
  /** Grants neither revoked nor expired at `now`. */
  listActive(agentId: string, now: number): Promise<readonly StoredGrant[]>;
  listAll(agentId: string): Promise<readonly StoredGrant[]>;
  /**
   * Revokes every active grant of `agentId` and adds `grants` (all for `agentId`) as one
   * atomic step: no reader ever sees some of the old set gone and the new one not yet there,
   * and a failure (`KEEL_NOT_FOUND` agent, `KEEL_CONFLICT` id, `KEEL_INVALID_ARGUMENT` grant of
   * another agent, metadata too large) changes nothing. With `deployment`, the agent's
   * metadata and trust level are replaced in the same step (a deploy: the manifest and its
   * grants never exist one without the other).
   */
  replace(
    agentId: string,
    grants: readonly NewGrant[],
    revokedBy: string,
    now: number,
    deployment?: AgentDeployment,
  ): Promise<GrantReplacement>;
}

/** What a deploy sets on the agent's record together with its grants. */
export interface AgentDeployment {
  readonly metadata: JsonObject;
  readonly trustLevel: TrustLevel;
  /**
   * A key-value setting written in the same step: the deployed version, so that the version
   * a replayed older manifest is compared with is always the one whose grants stand.
   */
  readonly setting?: { readonly key: string; readonly value: JsonValue };
}

/** What `GrantStore.replace` did: the grants it revoked and those it added, in order. */
export interface GrantReplacement {
  readonly revoked: readonly StoredGrant[];
  readonly added: readonly StoredGrant[];
  /** The agent's record after the change, when a deployment was applied. */
  readonly agent?: AgentRecord;
}
