import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadSimWorld, SimWorld } from './sim-world.ts';

describe('SimWorld', () => {
  const world = new SimWorld({
    bounds: { minX: 0, minY: 0, maxX: 10, maxY: 10 },
    obstacles: [
      { type: 'circle', x: 5, y: 5, radius: 1 },
      { type: 'box', minX: 7, minY: 0, maxX: 8, maxY: 2 },
    ],
  });

  it('casts rays to walls, circles and boxes', () => {
    assert.ok(Math.abs(world.rayCast(1, 5, 0, 20) - 3) < 1e-9);
    assert.ok(Math.abs(world.rayCast(1, 1, 0, 20) - 6) < 1e-9);
    assert.ok(Math.abs(world.rayCast(1, 8, Math.PI / 2, 20) - 2) < 1e-9);
    assert.equal(world.rayCast(1, 8, Math.PI / 2, 1.5), Number.POSITIVE_INFINITY);
  });

  it('detects contact at and just past the obstacle edge', () => {
    assert.equal(world.collides(5, 3.75, 0.25), false);
    assert.equal(world.collides(5, 3.76, 0.25), true);
    assert.equal(world.collides(0.25, 3, 0.25), false);
    assert.equal(world.collides(0.24, 3, 0.25), true);
  });

  it('loads a world file, and says what is wrong with a bad one', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'keel-world-'));
    try {
      const good = join(directory, 'good.json');
      await writeFile(
        good,
        JSON.stringify({ bounds: { minX: 0, minY: 0, maxX: 4, maxY: 4 }, dock: { x: 1, y: 1 } }),
      );
      assert.equal((await loadSimWorld(good)).description.dock?.x, 1);
      const broken = join(directory, 'broken.json');
      await writeFile(broken, '{"bounds":');
      await assert.rejects(loadSimWorld(broken), { code: 'KEEL_INVALID_ARGUMENT' });
      const inverted = join(directory, 'inverted.json');
      await writeFile(
        inverted,
        JSON.stringify({
          bounds: { minX: 0, minY: 0, maxX: 4, maxY: 4 },
          obstacles: [{ type: 'box', minX: 2, minY: 0, maxX: 1, maxY: 1 }],
        }),
      );
      await assert.rejects(loadSimWorld(inverted), /obstacles\.0/);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
