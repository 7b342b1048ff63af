import type { JsonObject } from './json-value.ts';

/** How far the kernel trusts an agent; approval policies key on it. */
export type TrustLevel = 'untrusted' | 'standard' | 'trusted';
/**
 * Every trust level, least trusted first.
 */
export const TRUST_LEVELS: readonly TrustLevel[] = ['untrusted', 'standard', 'trusted'];

/** The lifecycle states of DESIGN.md, plus `disabled` for an agent an operator switched off. */
export type AgentState =
  | 'created'
  | 'starting'
  | 'running'
  | 'paused'
  | 'stopping'
  | 'stopped'
  | 'crashed'
  | 'restarting'
  | 'disabled'
  | 'removed';

/** One persisted lifecycle transition. */
export interface AgentStateChange {
  readonly agentId: string;
  readonly from: AgentState;
  readonly to: AgentState;
  readonly reason: string;
  readonly at: number;
}

export interface AgentRecord {
  readonly id: string;
  readonly name: string;
  readonly trustLevel: TrustLevel;
  readonly state: AgentState;
  readonly metadata: JsonObject;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NewAgent {
  readonly id: string;
  readonly name: string;
  readonly trustLevel: TrustLevel;
  readonly metadata?: JsonObject;
  readonly now: number;
}

/**
 * Agents known to the node. Names are unique.
 *
 * @example
 * ```ts
 * await storage.agents.create({ id: createId('agt'), name: 'coder', trustLevel: 'standard', now });
 * ```
 */
export interface AgentStore {
  /** Fails with `KEEL_CONFLICT` when the id or name exists. */
  create(agent: NewAgent): Promise<AgentRecord>;
  get(id: string): Promise<AgentRecord | undefined>;
  getByName(name: string): Promise<AgentRecord | undefined>;
  list(): Promise<readonly AgentRecord[]>;
  /**
   * Moves an agent to `state` and records the transition (with `reason`) in its history, in
   * one transaction. With `expected`, only from that state (else `KEEL_CONFLICT`), so two
   * supervisors cannot both win a transition. Unknown id: `KEEL_NOT_FOUND`.
   */
  updateState(
    id: string,
    state: AgentState,
    now: number,
    expected?: AgentState,
    reason?: string,
  ): Promise<AgentRecord>;
  /** The agent's most recent transitions, newest last (at most `limit`, ≤ 1000). */
  history(id: string, limit: number): Promise<readonly AgentStateChange[]>;
  setTrustLevel(id: string, trustLevel: TrustLevel, now: number): Promise<AgentRecord>;
}
