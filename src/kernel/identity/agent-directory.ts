import { ExpiringCache } from '../../platform/cache/expiring-cache.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type {
  AgentRecord,
  AgentState,
  AgentStore,
  TrustLevel,
} from '../../platform/storage/ports/agent-store.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { RunRecord, RunStore } from '../../platform/storage/ports/run-store.ts';
import type { AuditLog } from '../audit/audit-log.ts';

/** Agent states in which an agent may make syscalls. */
const ACTIVE_STATES: ReadonlySet<AgentState> = new Set(['starting', 'running', 'stopping']);
const FINISHED_RUNS: ReadonlySet<RunRecord['status']> = new Set([
  'succeeded',
  'failed',
  'cancelled',
  'dead-lettered',
]);
/** The most names {@link AgentDirectory.getByName} remembers before it starts again. */
const MAX_NAMES = 10_000;
const AGENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Step 1 of the gate, identify: resolves the caller bound to an IPC channel to an active agent
 * (and, for durable runs, a live run that belongs to it). Keeps short-lived caches so that
 * the hot path reads storage about once a second per agent, and drops an entry at once when
 * the kernel itself changes it.
 *
 * @example
 * ```ts
 * const agent = await agents.register({ name: 'coder', trustLevel: 'standard' }, 'operator:ana');
 * ```
 */
export class AgentDirectory {
  readonly #agents: AgentStore;
  readonly #runs: RunStore;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #agentCache: ExpiringCache<string, AgentRecord | undefined>;
  readonly #runCache: ExpiringCache<string, RunRecord | undefined>;
  /** Agents' ids by name, as storage answered them (names never move to another agent). */
  readonly #idsByName = new Map<string, string>();

  constructor(dependencies: {
    readonly agents: AgentStore;
    readonly runs: RunStore;
    readonly audit: AuditLog;
    readonly clock: Clock;
    readonly cacheTtlMs?: number;
  }) {
    this.#agents = dependencies.agents;
    this.#runs = dependencies.runs;
    this.#audit = dependencies.audit;
    this.#clock = dependencies.clock;
    const ttlMs = dependencies.cacheTtlMs ?? 1_000;
    const now = () => dependencies.clock.monotonic();
    this.#agentCache = new ExpiringCache(ttlMs, now);
    this.#runCache = new ExpiringCache(ttlMs, now);
  }

  /**
   * The active agent behind an identity, or `KEEL_IDENTITY_UNKNOWN` saying why not: unknown
   * agent, an agent that is not running, a run that is not its own or is finished.
   */
  async resolve(identity: {
    readonly agentId: string;
    readonly runId?: string;
    readonly seq?: number;
  }): Promise<AgentRecord> {
    const agent = await this.#agentCache.get(identity.agentId, () =>
      this.#agents.get(identity.agentId),
    );
    if (agent === undefined) {
      throw new KeelError('KEEL_IDENTITY_UNKNOWN', `no agent ${identity.agentId}`);
    }
    if (!ACTIVE_STATES.has(agent.state)) {
      throw new KeelError(
        'KEEL_IDENTITY_UNKNOWN',
        `agent ${agent.name} is ${agent.state}, not running`,
        {
          details: { agentId: agent.id, state: agent.state },
        },
      );
    }
    if (identity.runId === undefined) {
      if (identity.seq !== undefined) {
        throw new KeelError('KEEL_INVALID_ARGUMENT', 'a sequence number needs a run');
      }
      return agent;
    }
    if (identity.seq === undefined || !Number.isSafeInteger(identity.seq) || identity.seq < 1) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'a call in a run needs a sequence number of 1 or more',
      );
    }
    const runId = identity.runId;
    const run = await this.#runCache.get(runId, () => this.#runs.get(runId));
    if (run === undefined || run.agentId !== agent.id) {
      throw new KeelError(
        'KEEL_IDENTITY_UNKNOWN',
        `run ${runId} does not belong to agent ${agent.name}`,
        {
          details: { agentId: agent.id, runId },
        },
      );
    }
    if (FINISHED_RUNS.has(run.status)) {
      throw new KeelError('KEEL_IDENTITY_UNKNOWN', `run ${runId} is ${run.status}`, {
        details: { runId, status: run.status },
      });
    }
    return agent;
  }

  /** An operator registers an agent (audited). */
  async register(
    agent: {
      readonly name: string;
      readonly trustLevel: TrustLevel;
      readonly metadata?: JsonObject;
    },
    actor: string,
  ): Promise<AgentRecord> {
    if (!AGENT_NAME.test(agent.name)) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `agent name ${agent.name} must be lowercase letters, digits and dashes`,
      );
    }
    const record = await this.#agents.create({
      id: createId('agt'),
      now: this.#clock.now(),
      ...agent,
    });
    await this.#audit.record({
      kind: 'agent.register',
      actor,
      agentId: record.id,
      subject: record.name,
      outcome: 'created',
      data: { trustLevel: record.trustLevel },
    });
    return record;
  }

  /** Moves an agent's lifecycle state (persisted; compare-and-set with `expected`). */
  async setState(
    agentId: string,
    state: AgentState,
    expected?: AgentState,
    reason?: string,
  ): Promise<AgentRecord> {
    const record = await this.#agents.updateState(
      agentId,
      state,
      this.#clock.now(),
      expected,
      reason,
    );
    this.#agentCache.delete(agentId);
    return record;
  }

  /** An operator changes an agent's trust level (audited: it changes approval policy). */
  async setTrustLevel(
    agentId: string,
    trustLevel: TrustLevel,
    actor: string,
  ): Promise<AgentRecord> {
    const before = await this.#agents.get(agentId);
    const record = await this.#agents.setTrustLevel(agentId, trustLevel, this.#clock.now());
    this.#agentCache.delete(agentId);
    await this.#audit.record({
      kind: 'agent.trust',
      actor,
      agentId,
      subject: record.name,
      outcome: trustLevel,
      data: { from: before?.trustLevel ?? null, to: trustLevel },
    });
    return record;
  }

  get(agentId: string): Promise<AgentRecord | undefined> {
    return this.#agents.get(agentId);
  }

  /**
   * An agent by name, through the same cache as {@link resolve}: a name, unique, stays with the
   * agent it was first registered for (a removed agent deployed again keeps its record).
   */
  async getByName(name: string): Promise<AgentRecord | undefined> {
    let id = this.#idsByName.get(name);
    if (id === undefined) {
      // Only the id is taken from this read: the record comes through the cache, whose
      // entries the kernel's own changes drop.
      id = (await this.#agents.getByName(name))?.id;
      if (id === undefined) return undefined;
      if (this.#idsByName.size >= MAX_NAMES) this.#idsByName.clear();
      this.#idsByName.set(name, id);
    }
    const known = id;
    return this.#agentCache.get(known, () => this.#agents.get(known));
  }

  /**
   * Keeps a run's record as storage has just answered it (an attempt starting), so that the
   * run's first call need not read it again.
   */
  noteRun(run: RunRecord): void {
    this.#runCache.set(run.id, run);
  }

  /** Drops a run's cached record (it ended). */
  forgetRun(runId: string): void {
    this.#runCache.delete(runId);
  }

  /** Drops the cached record of an agent changed by another service (a deploy's grants). */
  forget(agentId: string): void {
    this.#agentCache.delete(agentId);
  }

  list(): Promise<readonly AgentRecord[]> {
    return this.#agents.list();
  }
}
