import type { EventBus } from '../../platform/bus/event-bus.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import type {
  ApprovalListFilter,
  ApprovalRecord,
  ApprovalStore,
} from '../../platform/storage/ports/approval-store.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { summariseParameters } from '../audit/summarise-parameters.ts';
import { describeIntent } from '../gate/describe-intent.ts';
import { APPROVAL_DECIDED, APPROVAL_REQUESTED } from '../kernel-topics.ts';

export interface ApprovalRequestContext {
  readonly agentId: string;
  readonly runId: string | undefined;
  readonly seq: number | undefined;
  readonly kind: string;
  readonly resource: string;
  /** Digest of (agent, run, seq, intent): an approval authorises exactly that call. */
  readonly digest: string;
  /** What the approver sees (already size-capped and redacted). */
  readonly summary: JsonObject;
  readonly reason: string;
}

/**
 * Human approvals with durable records. An intent that needs approval gets one pending record
 * (asking again finds the same one); once approved it may run exactly once; denied and expired
 * records refuse it. Every request, decision and expiry is audited and published on the bus.
 *
 * @example
 * ```ts
 * await approvals.decide(approvalId, 'approved', 'operator:ana', 'looks safe');
 * ```
 */
export class ApprovalService {
  readonly #store: ApprovalStore;
  readonly #audit: AuditLog;
  readonly #bus: EventBus;
  readonly #clock: Clock;
  readonly #ttlMs: number;

  constructor(dependencies: {
    readonly store: ApprovalStore;
    readonly audit: AuditLog;
    readonly bus: EventBus;
    readonly clock: Clock;
    readonly ttlMs: number;
  }) {
    this.#store = dependencies.store;
    this.#audit = dependencies.audit;
    this.#bus = dependencies.bus;
    this.#clock = dependencies.clock;
    this.#ttlMs = dependencies.ttlMs;
  }

  /**
   * Lets the call proceed if an approved, unused approval exists for exactly this call (and
   * uses it up); otherwise throws `KEEL_APPROVAL_REQUIRED` (creating the pending record once),
   * `KEEL_APPROVAL_DENIED`, or `KEEL_APPROVAL_EXPIRED` once the request expired undecided.
   * An approved approval that was used or expired unused asks again.
   */
  async authorise(request: ApprovalRequestContext): Promise<ApprovalRecord> {
    const now = this.#clock.now();
    const existing = await this.#store.findLatest(request.agentId, request.digest);
    if (existing !== undefined) {
      if (
        existing.state === 'approved' &&
        existing.consumedAt === null &&
        existing.expiresAt > now
      ) {
        const used = await this.#store.consume(existing.id, now);
        await this.#audit.record({
          kind: 'approval.use',
          actor: `agent:${request.agentId}`,
          agentId: request.agentId,
          runId: request.runId ?? null,
          subject: describeIntent(request),
          outcome: 'used',
          data: { approvalId: existing.id, decidedBy: existing.decidedBy },
        });
        return used;
      }
      if (existing.state === 'pending' && existing.expiresAt > now) throw required(existing);
      if (
        existing.state === 'expired' ||
        (existing.state === 'pending' && existing.expiresAt <= now)
      ) {
        // Nobody decided in time: the call is refused, never silently asked again.
        throw new KeelError(
          'KEEL_APPROVAL_EXPIRED',
          `approval ${existing.id} expired before anyone decided; the call is refused`,
          { details: { approvalId: existing.id } },
        );
      }
      if (existing.state === 'denied') {
        throw new KeelError(
          'KEEL_APPROVAL_DENIED',
          `approval ${existing.id} was denied by ${existing.decidedBy ?? 'an operator'}`,
          {
            details: { approvalId: existing.id, note: existing.note },
          },
        );
      }
    }
    const record = await this.#store.create({
      id: createId('apr'),
      agentId: request.agentId,
      runId: request.runId ?? null,
      seq: request.seq ?? null,
      kind: request.kind,
      resource: request.resource,
      intentDigest: request.digest,
      summary: request.summary,
      reason: request.reason,
      requestedAt: now,
      expiresAt: now + this.#ttlMs,
    });
    await this.#audit.record({
      kind: 'approval.request',
      actor: `agent:${request.agentId}`,
      agentId: request.agentId,
      runId: request.runId ?? null,
      subject: describeIntent(request),
      outcome: 'pending',
      code: 'KEEL_APPROVAL_REQUIRED',
      data: {
        approvalId: record.id,
        reason: request.reason,
        expiresAt: record.expiresAt,
        summary: request.summary,
      },
    });
    await this.#bus.publish(APPROVAL_REQUESTED, {
      approvalId: record.id,
      agentId: record.agentId,
      runId: record.runId,
    });
    throw required(record);
  }

  /**
   * An operator approves or denies a pending approval (audited). Approving with `paramEdits`
   * (edit-then-approve) runs the call with those top-level parameters replaced; the gate checks
   * the edited call's capability and rules again before it runs.
   */
  async decide(
    id: string,
    state: 'approved' | 'denied',
    actor: string,
    note?: string,
    paramEdits?: JsonObject,
  ): Promise<ApprovalRecord> {
    const now = this.#clock.now();
    let record: ApprovalRecord;
    try {
      record = await this.#store.decide(id, {
        state,
        decidedBy: actor,
        now,
        ...(note === undefined ? {} : { note }),
        ...(paramEdits === undefined ? {} : { paramEdits }),
      });
    } catch (error) {
      if (isKeelError(error) && error.code === 'KEEL_APPROVAL_EXPIRED') {
        await this.#auditExpiry(id, actor);
      }
      throw error;
    }
    await this.#audit.record({
      kind: state === 'approved' ? 'approval.approve' : 'approval.deny',
      actor,
      agentId: record.agentId,
      runId: record.runId,
      subject: describeIntent(record),
      outcome: state,
      data: {
        approvalId: id,
        note: note ?? null,
        ...(paramEdits === undefined ? {} : { paramEdits: summariseParameters(paramEdits) }),
      },
    });
    await this.#bus.publish(APPROVAL_DECIDED, {
      approvalId: id,
      agentId: record.agentId,
      runId: record.runId,
      state,
    });
    return record;
  }

  /** Expires pending approvals whose time ran out; returns how many (each audited). */
  async expireDue(): Promise<number> {
    const expired = await this.#store.expireDue(this.#clock.now());
    for (const record of expired) {
      await this.#auditExpiry(record.id, 'system', record);
      await this.#bus.publish(APPROVAL_DECIDED, {
        approvalId: record.id,
        agentId: record.agentId,
        runId: record.runId,
        state: 'expired',
      });
    }
    return expired.length;
  }

  async #auditExpiry(id: string, actor: string, known?: ApprovalRecord): Promise<void> {
    const record = known ?? (await this.#store.get(id));
    await this.#audit.record({
      kind: 'approval.expire',
      actor,
      agentId: record?.agentId ?? null,
      runId: record?.runId ?? null,
      subject: record === undefined ? null : describeIntent(record),
      outcome: 'expired',
      code: 'KEEL_APPROVAL_EXPIRED',
      data: { approvalId: id },
    });
  }

  get(id: string): Promise<ApprovalRecord | undefined> {
    return this.#store.get(id);
  }

  list(filter?: ApprovalListFilter): Promise<readonly ApprovalRecord[]> {
    return this.#store.list(filter);
  }
}

function required(record: ApprovalRecord): KeelError {
  return new KeelError(
    'KEEL_APPROVAL_REQUIRED',
    `${describeIntent(record)} waits for approval ${record.id}`,
    {
      details: { approvalId: record.id, expiresAt: record.expiresAt, reason: record.reason },
    },
  );
}
