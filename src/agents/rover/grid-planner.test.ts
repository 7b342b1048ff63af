import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathIsClear, planPath } from './grid-planner.ts';

const bounds = { minX: 0, minY: 0, maxX: 12, maxY: 8 };
const options = { cell: 0.2, clearance: 0.45, bounds };

/** A wall along x = 5 from y = 0 to 5, as observed points. */
function wall(): Array<[number, number]> {
  const points: Array<[number, number]> = [];
  for (let y = 0; y <= 5; y += 0.1) points.push([5, y], [5.4, y]);
  return points;
}

describe('grid planner', () => {
  it('goes around a wall, every leg keeping the clearance', () => {
    const obstacles = wall();
    const path = planPath({ x: 1, y: 1 }, { x: 9, y: 1 }, obstacles, options);
    assert.ok(path !== undefined);
    assert.deepEqual(path.at(-1), { x: 9, y: 1 });
    assert.ok(
      path.some((point) => point.y > 5.4),
      'the path passes above the wall',
    );
    assert.equal(pathIsClear({ x: 1, y: 1 }, path, obstacles, options), true);
    assert.equal(pathIsClear({ x: 1, y: 1 }, [{ x: 9, y: 1 }], obstacles, options), false);
  });

  it('takes a straight line when nothing is in the way', () => {
    assert.deepEqual(planPath({ x: 1, y: 1 }, { x: 4, y: 4 }, [], options), [{ x: 4, y: 4 }]);
  });

  it('finds no path to a goal inside an obstacle or walled off', () => {
    assert.equal(planPath({ x: 1, y: 1 }, { x: 5.2, y: 2 }, wall(), options), undefined);
    const closed: Array<[number, number]> = [];
    for (let y = 0; y <= 8; y += 0.1) closed.push([5, y]);
    assert.equal(planPath({ x: 1, y: 1 }, { x: 9, y: 1 }, closed, options), undefined);
  });

  it('lets a robot standing too close to something move away', () => {
    const path = planPath({ x: 4.7, y: 1 }, { x: 1, y: 1 }, wall(), options);
    assert.ok(path !== undefined);
  });
});
