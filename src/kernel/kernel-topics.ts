import { defineTopic } from '../platform/bus/topic.ts';

/** A human approval is needed (reliable: approvers and the runtime must see every one). */
export const APPROVAL_REQUESTED = defineTopic<{
  readonly approvalId: string;
  readonly agentId: string;
  readonly runId: string | null;
}>('approvals.requested', 'reliable');

/** An approval was approved, denied or expired; the runtime resumes or fails the run. */
export const APPROVAL_DECIDED = defineTopic<{
  readonly approvalId: string;
  readonly agentId: string;
  readonly runId: string | null;
  readonly state: 'approved' | 'denied' | 'expired';
}>('approvals.decided', 'reliable');
