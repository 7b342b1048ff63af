import type { KeelError } from '../../platform/errors/keel-error.ts';

/** The step of the gate that refused a call, recorded in the audit entry. */
export type GateStep =
  | 'validate'
  | 'identify'
  | 'replay'
  | 'capability'
  | 'verifier'
  | 'executor'
  | 'budget'
  | 'approval'
  | 'execute';

/**
 * A refusal on its way out of the gate: the error for the caller plus the step to audit.
 *
 * @example
 * ```ts
 * throw new Refusal(new KeelError('KEEL_CAPABILITY_DENIED', reason), 'capability');
 * ```
 */
export class Refusal extends Error {
  readonly error: KeelError;
  readonly step: GateStep;

  constructor(error: KeelError, step: GateStep) {
    super(error.message);
    this.error = error;
    this.step = step;
  }
}
