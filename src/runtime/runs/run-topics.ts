import { defineTopic } from '../../platform/bus/topic.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { RunStatus } from '../../platform/storage/ports/run-store.ts';

/** One syscall of a run, once the kernel answered it (what `keel run --follow` prints). */
export interface RunStepMessage {
  readonly runId: string;
  readonly agentId: string;
  readonly seq: number;
  readonly kind: string;
  readonly resource: string;
  readonly outcome: 'ok' | 'error';
  readonly code: string | null;
  readonly at: number;
}

/** A run changed status; `result` or `error` when it ended. */
export interface RunStatusMessage {
  readonly runId: string;
  readonly agentId: string;
  readonly status: RunStatus;
  readonly attempts: number;
  readonly result: JsonValue | null;
  readonly error: JsonValue | null;
  readonly at: number;
}

export const RUN_STEPS = defineTopic<RunStepMessage>('runs.steps', 'reliable');
export const RUN_STATUS = defineTopic<RunStatusMessage>('runs.status', 'reliable');
