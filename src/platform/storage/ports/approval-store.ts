import type { JsonObject } from './json-value.ts';

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired';

export interface ApprovalRecord {
  readonly id: string;
  readonly agentId: string;
  readonly runId: string | null;
  readonly seq: number | null;
  readonly kind: string;
  readonly resource: string;
  /** Digest of the exact intent; an approval authorises that intent and nothing else. */
  readonly intentDigest: string;
  /** What the approver is shown (already redacted by the kernel). */
  readonly summary: JsonObject;
  readonly reason: string;
  readonly state: ApprovalState;
  readonly requestedAt: number;
  readonly expiresAt: number;
  readonly decidedAt: number | null;
  readonly decidedBy: string | null;
  readonly note: string | null;
  /** When an approved intent was executed; an approval is used once. */
  readonly consumedAt: number | null;
  /**
   * Top-level parameters the approver replaced (edit-then-approve); the call runs with the
   * agent's parameters overlaid by these. `null` when approved as asked (or not approved).
   */
  readonly paramEdits: JsonObject | null;
}

export interface NewApproval {
  readonly id: string;
  readonly agentId: string;
  readonly runId: string | null;
  readonly seq: number | null;
  readonly kind: string;
  readonly resource: string;
  readonly intentDigest: string;
  readonly summary: JsonObject;
  readonly reason: string;
  readonly requestedAt: number;
  readonly expiresAt: number;
}

export interface ApprovalDecision {
  readonly state: 'approved' | 'denied';
  readonly decidedBy: string;
  readonly note?: string;
  /** Only with `approved`: parameters to replace (`KEEL_INVALID_ARGUMENT` with `denied`). */
  readonly paramEdits?: JsonObject;
  readonly now: number;
}

export interface ApprovalListFilter {
  readonly state?: ApprovalState;
  readonly agentId?: string;
  readonly limit?: number;
}

/**
 * Durable approval records. State moves only `pending → approved | denied | expired`; every
 * transition is a compare-and-set in storage, so two approvers cannot both decide.
 *
 * @example
 * ```ts
 * const record = await storage.approvals.decide(id, { state: 'approved', decidedBy: 'operator:ana', now });
 * ```
 */
export interface ApprovalStore {
  create(approval: NewApproval): Promise<ApprovalRecord>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  list(filter?: ApprovalListFilter): Promise<readonly ApprovalRecord[]>;
  /** The most recent approval for the same agent and intent digest, in any state. */
  findLatest(agentId: string, intentDigest: string): Promise<ApprovalRecord | undefined>;
  /**
   * Decides a pending approval. `KEEL_NOT_FOUND` for an unknown id, `KEEL_APPROVAL_EXPIRED`
   * when past its expiry, `KEEL_CONFLICT` when already decided.
   */
  decide(id: string, decision: ApprovalDecision): Promise<ApprovalRecord>;
  /** Marks pending approvals whose expiry has passed as expired and returns them. */
  expireDue(now: number): Promise<readonly ApprovalRecord[]>;
  /**
   * Uses an approved approval once. `KEEL_CONFLICT` if it is not approved or already used,
   * `KEEL_APPROVAL_EXPIRED` when past its expiry.
   */
  consume(id: string, now: number): Promise<ApprovalRecord>;
}
