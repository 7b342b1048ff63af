import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { wrapAngle } from '../geometry/quaternion.ts';
import { type FusionInput, OdometryImuFusion } from './odometry-imu-fusion.ts';

const PERIOD_MS = 20;

/** Deterministic noise in [−1, 1] (a linear congruential generator). */
function noiseSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32) * 2 - 1;
  };
}

interface Drive {
  readonly seconds: number;
  readonly linear: number;
  /** The true turn rate at time t. */
  readonly angular: (time: number) => number;
  readonly wheelBias: number;
  readonly gyroBias: number;
  readonly gyroNoise: number;
  readonly withGyro: boolean;
  readonly withCompass: boolean;
}

/** Drives a simulated robot and returns the final true pose and the fused estimate. */
function simulate(drive: Drive) {
  const fusion = new OdometryImuFusion();
  const noise = noiseSource(42);
  let x = 0;
  let y = 0;
  let yaw = 0;
  const steps = (drive.seconds * 1000) / PERIOD_MS;
  for (let step = 0; step <= steps; step += 1) {
    const time = (step * PERIOD_MS) / 1000;
    const rate = drive.angular(time);
    if (step > 0) {
      // Ground truth, integrated finely.
      for (let fine = 0; fine < 20; fine += 1) {
        const dt = PERIOD_MS / 1000 / 20;
        x += drive.linear * dt * Math.cos(yaw);
        y += drive.linear * dt * Math.sin(yaw);
        yaw += rate * dt;
      }
    }
    const input: FusionInput = {
      stampMs: step * PERIOD_MS,
      odometry: { linear: drive.linear, angular: rate + drive.wheelBias },
      ...(drive.withGyro
        ? {
            imu: {
              yawRate: rate + drive.gyroBias + drive.gyroNoise * noise(),
              ...(drive.withCompass ? { yaw: wrapAngle(yaw + 0.05 * noise()) } : {}),
            },
          }
        : {}),
    };
    fusion.update(input);
  }
  const estimate = fusion.estimate;
  return {
    positionError: Math.hypot(estimate.x - x, estimate.y - y),
    yawError: Math.abs(wrapAngle(estimate.yaw - yaw)),
  };
}

const WANDER: Omit<Drive, 'withGyro' | 'withCompass'> = {
  seconds: 30,
  linear: 0.5,
  angular: (time) => 0.3 * Math.sin(time / 3),
  wheelBias: 0.05,
  gyroBias: 0.002,
  gyroNoise: 0.01,
};

describe('OdometryImuFusion', () => {
  it('beats wheel odometry alone when the wheel turn rate is biased', () => {
    const wheelsOnly = simulate({ ...WANDER, withGyro: false, withCompass: false });
    const fused = simulate({ ...WANDER, withGyro: true, withCompass: false });
    // 30 s of a 0.05 rad/s bias is 1.5 rad of heading error for the wheels alone.
    assert.ok(wheelsOnly.yawError > 1, `wheels alone: ${wheelsOnly.yawError}`);
    assert.ok(fused.yawError < 0.15, `fused: ${fused.yawError}`);
    assert.ok(
      fused.positionError < wheelsOnly.positionError / 4,
      `${fused.positionError} vs ${wheelsOnly.positionError}`,
    );
  });

  it('bounds the drift of a biased gyro with an absolute heading', () => {
    const biased = { ...WANDER, gyroBias: 0.03, seconds: 60 };
    const gyroOnly = simulate({ ...biased, withGyro: true, withCompass: false });
    const withCompass = simulate({ ...biased, withGyro: true, withCompass: true });
    assert.ok(gyroOnly.yawError > 1, `gyro alone: ${gyroOnly.yawError}`);
    // A bias b leaves about b·τ (0.03 · 2 s) of error, plus the wheels' small share.
    assert.ok(withCompass.yawError < 0.12, `with compass: ${withCompass.yawError}`);
  });

  it('integrates a straight line and an arc exactly', () => {
    const straight = new OdometryImuFusion({ initialPose: { x: 1, y: 2, yaw: Math.PI / 2 } });
    straight.update({ stampMs: 0, odometry: { linear: 2, angular: 0 } });
    const line = straight.update({ stampMs: 1_500, odometry: { linear: 2, angular: 0 } });
    assert.ok(Math.abs(line.x - 1) < 1e-12 && Math.abs(line.y - 5) < 1e-12);
    const circle = new OdometryImuFusion();
    for (let step = 0; step <= 1_000; step += 1) {
      circle.update({ stampMs: step * 2 * Math.PI, odometry: { linear: 1, angular: 1 } });
    }
    // A full turn at radius 1 comes back to the start (midpoint integration keeps it closed).
    assert.ok(Math.hypot(circle.estimate.x, circle.estimate.y) < 1e-3);
    assert.ok(Math.abs(wrapAngle(circle.estimate.yaw)) < 1e-9);
  });

  it('starts the clock on the first update without moving', () => {
    const fusion = new OdometryImuFusion();
    const first = fusion.update({ stampMs: 5_000, odometry: { linear: 3, angular: 1 } });
    assert.equal(first.x, 0);
    assert.equal(first.yaw, 0);
    assert.equal(first.linear, 3);
    assert.equal(first.stampMs, 5_000);
  });

  it('ignores readings whose stamp is not after the previous one', () => {
    const fusion = new OdometryImuFusion();
    fusion.update({ stampMs: 1_000, odometry: { linear: 1, angular: 0 } });
    const moved = fusion.update({ stampMs: 2_000, odometry: { linear: 1, angular: 0 } });
    assert.equal(fusion.update({ stampMs: 2_000, odometry: { linear: 9, angular: 9 } }), moved);
    assert.equal(fusion.update({ stampMs: 1_500, odometry: { linear: 9, angular: 9 } }), moved);
    assert.equal(fusion.estimate.x, 1);
  });

  it('rejects NaN and infinite readings and keeps its estimate', () => {
    const fusion = new OdometryImuFusion();
    fusion.update({ stampMs: 0, odometry: { linear: 1, angular: 0 } });
    const before = fusion.estimate;
    const invalid = (error: unknown) =>
      error instanceof KeelError && error.code === 'KEEL_INVALID_ARGUMENT';
    assert.throws(
      () => fusion.update({ stampMs: 10, odometry: { linear: Number.NaN, angular: 0 } }),
      invalid,
    );
    assert.throws(
      () =>
        fusion.update({ stampMs: 10, odometry: { linear: 1, angular: Number.POSITIVE_INFINITY } }),
      invalid,
    );
    assert.throws(
      () =>
        fusion.update({
          stampMs: 10,
          odometry: { linear: 1, angular: 0 },
          imu: { yawRate: Number.NaN },
        }),
      invalid,
    );
    assert.throws(
      () =>
        fusion.update({
          stampMs: 10,
          odometry: { linear: 1, angular: 0 },
          imu: { yawRate: 0, yaw: Number.NaN },
        }),
      invalid,
    );
    assert.throws(
      () => fusion.update({ stampMs: Number.NaN, odometry: { linear: 1, angular: 0 } }),
      invalid,
    );
    assert.equal(fusion.estimate, before);
  });

  it('wraps its heading and restarts from a reset pose', () => {
    const fusion = new OdometryImuFusion({ initialPose: { x: 0, y: 0, yaw: 3 } });
    fusion.update({ stampMs: 0, odometry: { linear: 0, angular: 1 } });
    const turned = fusion.update({ stampMs: 500, odometry: { linear: 0, angular: 1 } });
    assert.ok(Math.abs(turned.yaw - (3.5 - 2 * Math.PI)) < 1e-12);
    fusion.reset({ x: 4, y: 5, yaw: 0 });
    assert.equal(fusion.estimate.stampMs, undefined);
    const after = fusion.update({ stampMs: 600, odometry: { linear: 1, angular: 0 } });
    assert.equal(after.x, 4);
  });

  it('refuses gains outside their ranges', () => {
    assert.throws(() => new OdometryImuFusion({ gyroWeight: 1.5 }), KeelError);
    assert.throws(() => new OdometryImuFusion({ absoluteYawTimeConstantSeconds: 0 }), KeelError);
    assert.throws(
      () => new OdometryImuFusion({ initialPose: { x: Number.NaN, y: 0, yaw: 0 } }),
      KeelError,
    );
  });
});
