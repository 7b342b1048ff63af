import { KeelError } from '../../../platform/errors/keel-error.ts';

export interface PidGains {
  readonly proportional: number;
  readonly integral: number;
  readonly derivative: number;
  /** Output clamp. */
  readonly outputMin: number;
  readonly outputMax: number;
  /**
   * Back-calculation gain of the anti-windup: how fast the integral unwinds by the amount
   * the output was clamped. Default `integral / proportional` (or 1 without a proportional
   * term), a common choice.
   */
  readonly antiWindup?: number;
}

/**
 * A PID controller for a control loop: output clamping, anti-windup by back-calculation,
 * derivative on the measurement (a step in the setpoint does not kick the output), and a
 * guard that holds the last output for a step of `dt ≤ 0` (a clock that stood still or ran
 * backwards) instead of dividing by zero.
 *
 * @example
 * ```ts
 * const pid = new PidController({ proportional: 2, integral: 0.5, derivative: 0.1, outputMin: -1, outputMax: 1 });
 * const command = pid.update(targetHeading, heading, 0.01);
 * ```
 */
export class PidController {
  readonly #gains: Required<PidGains>;
  #integral = 0;
  #lastMeasurement: number | undefined;
  #lastOutput = 0;

  constructor(gains: PidGains) {
    for (const [name, value] of Object.entries(gains)) {
      if (!Number.isFinite(value)) {
        throw new KeelError('KEEL_INVALID_ARGUMENT', `PID gain ${name} must be a finite number`);
      }
    }
    if (gains.outputMin > gains.outputMax) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'PID outputMin must not exceed outputMax');
    }
    const antiWindup =
      gains.antiWindup ?? (gains.proportional > 0 ? gains.integral / gains.proportional : 1);
    this.#gains = { ...gains, antiWindup };
  }

  /** The controller's output for this step, clamped to the output range. */
  update(setpoint: number, measurement: number, dtSeconds: number): number {
    if (!Number.isFinite(setpoint) || !Number.isFinite(measurement)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'PID setpoint and measurement must be finite');
    }
    if (!(dtSeconds > 0) || !Number.isFinite(dtSeconds)) return this.#lastOutput;
    const gains = this.#gains;
    const error = setpoint - measurement;
    const derivative =
      this.#lastMeasurement === undefined ? 0 : -(measurement - this.#lastMeasurement) / dtSeconds;
    this.#lastMeasurement = measurement;
    const unclamped =
      gains.proportional * error + gains.integral * this.#integral + gains.derivative * derivative;
    const output = Math.min(gains.outputMax, Math.max(gains.outputMin, unclamped));
    // Back-calculation: integrate the error, minus what the clamp cut off, so the integral
    // stops growing while the output is saturated and unwinds as soon as it is not.
    this.#integral += (error + gains.antiWindup * (output - unclamped)) * dtSeconds;
    this.#lastOutput = output;
    return output;
  }

  /** The accumulated integral of the error (for tests and telemetry). */
  get integral(): number {
    return this.#integral;
  }

  reset(): void {
    this.#integral = 0;
    this.#lastMeasurement = undefined;
    this.#lastOutput = 0;
  }
}
