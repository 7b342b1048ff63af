export interface UsageRecord {
  readonly id: string;
  readonly ts: number;
  readonly agentId: string;
  readonly runId: string | null;
  /** The syscall kind that consumed it, e.g. `llm.chat`. */
  readonly kind: string;
  readonly model: string;
  readonly provider: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Cost in millionths of a US dollar; `null` when the model has no known price. */
  readonly costMicros: number | null;
}

export type UsageDimension = 'agentId' | 'runId' | 'model' | 'provider';

export interface UsageFilter {
  readonly agentId?: string;
  readonly runId?: string;
  readonly since?: number;
  readonly until?: number;
}

export interface UsageSummaryRow {
  /** The grouping values, keyed by dimension. */
  readonly group: Readonly<Partial<Record<UsageDimension, string | null>>>;
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Sum of known costs. */
  readonly costMicros: number;
  /** Calls whose cost was unknown (not priced at zero: counted apart). */
  readonly unpricedCalls: number;
}

/**
 * Token and cost usage, persisted per agent, run, model and provider.
 *
 * @example
 * ```ts
 * await storage.usage.summarize({ agentId }, ['model']);
 * ```
 */
export interface UsageStore {
  record(usage: UsageRecord): Promise<void>;
  summarize(
    filter: UsageFilter,
    groupBy: readonly UsageDimension[],
  ): Promise<readonly UsageSummaryRow[]>;
}
