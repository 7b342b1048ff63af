import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PidController } from './pid-controller.ts';

const gains = { proportional: 2, integral: 1, derivative: 0.5, outputMin: -1, outputMax: 1 };

/** A first-order plant driven by the controller; returns the measurement after `steps`. */
function simulate(pid: PidController, setpoint: number, steps: number, start = 0): number {
  let measurement = start;
  for (let step = 0; step < steps; step += 1) {
    measurement += pid.update(setpoint, measurement, 0.01) * 0.01;
  }
  return measurement;
}

describe('PidController', () => {
  it('clamps its output to the configured range', () => {
    const pid = new PidController(gains);
    assert.equal(pid.update(100, 0, 0.01), 1);
    assert.equal(pid.update(-100, 0, 0.01), -1);
  });

  it('keeps the integral from winding up while the output is saturated', () => {
    const withBackCalculation = new PidController(gains);
    const withoutAntiWindup = new PidController({ ...gains, antiWindup: 0 });
    for (let step = 0; step < 500; step += 1) {
      withBackCalculation.update(10, 0, 0.01);
      withoutAntiWindup.update(10, 0, 0.01);
    }
    assert.ok(withoutAntiWindup.integral > 45, 'control: the integral does wind up without it');
    assert.ok(Math.abs(withBackCalculation.integral) < 10);
  });

  it('recovers from saturation with less overshoot than without anti-windup', () => {
    const overshoot = (antiWindup?: number) => {
      const pid = new PidController(antiWindup === undefined ? gains : { ...gains, antiWindup });
      let measurement = 0;
      let highest = 0;
      for (let step = 0; step < 3000; step += 1) {
        measurement += pid.update(5, measurement, 0.01) * 0.01;
        highest = Math.max(highest, measurement);
      }
      return highest - 5;
    };
    assert.ok(overshoot() < overshoot(0));
  });

  it('takes the derivative on the measurement, so a setpoint step does not kick the output', () => {
    const pid = new PidController({ ...gains, proportional: 0, integral: 0, derivative: 1 });
    pid.update(0, 0, 0.01);
    assert.equal(pid.update(0.5, 0, 0.01), 0);
    assert.ok(pid.update(0.5, 0.001, 0.01) < 0);
  });

  it('holds its last output for a step with dt of zero or less', () => {
    const pid = new PidController(gains);
    const output = pid.update(0.2, 0, 0.01);
    const integral = pid.integral;
    assert.equal(pid.update(5, 0, 0), output);
    assert.equal(pid.update(5, 0, -0.01), output);
    assert.equal(pid.integral, integral);
  });

  it('brings a plant to its setpoint', () => {
    const pid = new PidController(gains);
    assert.ok(Math.abs(simulate(pid, 0.3, 2000) - 0.3) < 0.01);
  });

  it('refuses non-finite gains, an inverted clamp and non-finite inputs', () => {
    assert.throws(() => new PidController({ ...gains, integral: Number.NaN }), /finite/);
    assert.throws(() => new PidController({ ...gains, outputMin: 2 }), /outputMin/);
    assert.throws(() => new PidController(gains).update(Number.NaN, 0, 0.01), /finite/);
  });
});
