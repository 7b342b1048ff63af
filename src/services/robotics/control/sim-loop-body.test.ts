import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimLoopBody } from './sim-loop-body.ts';

const BOUNDS = { minX: -50, minY: -50, maxX: 50, maxY: 50 };

/** One loop tick at `nowMs`: the command goes out, then the body steps `dtSeconds`. */
function tick(body: SimLoopBody, speed: number, dtSeconds: number, nowMs: number): void {
  body.robot.base.doCommand({ left: speed, right: speed }, nowMs);
  body.step(dtSeconds, nowMs);
}

describe('the sim loop body', () => {
  it('steps a late tick in full: the world keeps pace with the clock the odometry is fused on', () => {
    const body = new SimLoopBody({ bounds: BOUNDS }, { start: { x: 0, y: 0, yaw: 0 } });
    for (let at = 10; at <= 1000; at += 10) tick(body, 0.5, 0.01, at); // up to cruising speed
    const from = body.state().x;
    tick(body, 0.5, 0.3, 1300); // the loop thread was descheduled for 300 ms
    assert.ok(Math.abs(body.state().x - from - 0.15) < 1e-9, `moved ${body.state().x - from} m`);
  });

  it('steps a late tick in slices, so the robot does not jump through a thin wall', () => {
    const wall = { type: 'box', minX: 0.5, minY: -1, maxX: 0.55, maxY: 1 };
    const body = new SimLoopBody(
      { bounds: BOUNDS, obstacles: [wall] },
      { start: { x: 0, y: 0, yaw: 0 }, acceleration: 100 },
    );
    tick(body, 1.5, 0.6, 600);
    assert.ok(body.state().contacts > 0, 'it touched the wall');
    assert.ok(body.state().x < 0.25, `ended at x = ${body.state().x}`);
  });
});
