import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../../test/support/silent-logger.ts';
import { RobotPerception } from './robot-perception.ts';

function sweep(stampMs: number, x: number) {
  const beams = 360;
  const ranges = new Float32Array(beams).fill(Number.POSITIVE_INFINITY);
  ranges[180] = 2; // straight ahead: a return 2 m away
  return {
    scan: {
      frameId: 'laser',
      stampMs,
      angleMin: -Math.PI,
      angleIncrement: (2 * Math.PI) / beams,
      rangeMin: 0.05,
      rangeMax: 12,
      ranges,
    },
    estimate: { stampMs, x, y: 0, yaw: 0, linear: 0.5, angular: 0 },
  };
}

describe('RobotPerception', () => {
  it('maps a return through the pose the loop fused, and clears it when a later beam passes through', () => {
    const perception = new RobotPerception(silentLogger());
    for (let index = 0; index < 3; index += 1) perception.ingest(sweep(1000 + index * 100, 0));
    assert.ok(perception.map().isOccupied({ x: 2, y: 0, z: 0.2 }));
    assert.equal(perception.estimate()?.x, 0);
    // The obstacle moved away: beams now reach 4 m through where it stood.
    for (let index = 0; index < 20; index += 1) {
      const moved = sweep(2000 + index * 100, 0);
      moved.scan.ranges[180] = 4;
      perception.ingest(moved);
    }
    assert.equal(perception.map().isOccupied({ x: 2, y: 0, z: 0.2 }), false);
    assert.equal(perception.statistics.scans, 23);
    assert.equal(perception.statistics.rejected, 0);
  });

  it('offers a pose for motion decisions only while the sensors keep confirming it', () => {
    const perception = new RobotPerception(silentLogger());
    assert.equal(perception.freshEstimate(1000, 1000), undefined);
    perception.ingest(sweep(1000, 1.5));
    assert.equal(perception.freshEstimate(1900, 1000)?.x, 1.5);
    assert.equal(perception.freshEstimate(2001, 1000), undefined);
  });
});
