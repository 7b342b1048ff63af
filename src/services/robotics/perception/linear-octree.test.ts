import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { LinearOctree, MAX_OCTREE_DEPTH, packVoxelKey } from './linear-octree.ts';

const voxel = fc.record({
  i: fc.integer({ min: 0, max: 255 }),
  j: fc.integer({ min: 0, max: 255 }),
  k: fc.integer({ min: 0, max: 255 }),
});

describe('LinearOctree', () => {
  it('maps points to voxels centred on the origin', () => {
    const index = new LinearOctree(0.5, 4);
    assert.equal(index.extent, 4);
    assert.equal(index.indexOf(0), 8);
    assert.equal(index.indexOf(-0.01), 7);
    assert.equal(index.indexOf(3.99), 15);
    assert.equal(index.indexOf(4), -1);
    assert.equal(index.indexOf(-4), 0);
    assert.equal(index.indexOf(-4.01), -1);
    assert.equal(index.keyAt(0, 0, 100), -1);
    assert.equal(index.centreOf(8), 0.25);
    assert.deepEqual(index.unpack(index.keyAt(0.3, -0.3, 1.2)), [8, 7, 10]);
  });

  it('links a leaf into every level and unlinks it when removed', () => {
    const index = new LinearOctree(0.05, MAX_OCTREE_DEPTH);
    const key = index.keyAt(1, 2, 3);
    index.set(key, 0.5);
    assert.notEqual(index.maskAt(MAX_OCTREE_DEPTH, 0, 0, 0), 0);
    assert.equal(index.get(key), 0.5);
    index.set(key, 0.7);
    assert.equal(index.size, 1);
    assert.equal(index.delete(key), true);
    assert.equal(index.delete(key), false);
    assert.equal(index.maskAt(MAX_OCTREE_DEPTH, 0, 0, 0), 0);
    assert.equal(index.get(key), undefined);
  });

  it('keeps a shared ancestor while another leaf still needs it', () => {
    const index = new LinearOctree(1, 8);
    const first = packVoxelKey(10, 10, 10);
    const second = packVoxelKey(11, 10, 10);
    index.set(first, 1);
    index.set(second, 1);
    index.delete(first);
    assert.equal(index.maskAt(1, 5, 5, 5), 0b10);
    assert.equal(
      index.visitLeavesInBox(-200, -200, -200, 200, 200, 200, () => true),
      true,
    );
  });

  it('finds exactly the leaves whose voxels overlap a box', () => {
    fc.assert(
      fc.property(fc.array(voxel, { maxLength: 80 }), voxel, voxel, (voxels, corner, other) => {
        const index = new LinearOctree(0.25, 8);
        for (const { i, j, k } of voxels) index.set(packVoxelKey(i, j, k), 1);
        const low = [
          Math.min(corner.i, other.i),
          Math.min(corner.j, other.j),
          Math.min(corner.k, other.k),
        ];
        const high = [
          Math.max(corner.i, other.i),
          Math.max(corner.j, other.j),
          Math.max(corner.k, other.k),
        ];
        // The box runs from inside voxel `low` to inside voxel `high`.
        const toCoordinate = (value: number) => (value - 128 + 0.5) * 0.25;
        const found: number[] = [];
        index.visitLeavesInBox(
          toCoordinate(low[0] ?? 0),
          toCoordinate(low[1] ?? 0),
          toCoordinate(low[2] ?? 0),
          toCoordinate(high[0] ?? 0),
          toCoordinate(high[1] ?? 0),
          toCoordinate(high[2] ?? 0),
          (key) => {
            found.push(key);
            return undefined;
          },
        );
        const expected = new Set(
          voxels
            .filter(
              ({ i, j, k }) =>
                i >= (low[0] ?? 0) &&
                i <= (high[0] ?? 0) &&
                j >= (low[1] ?? 0) &&
                j <= (high[1] ?? 0) &&
                k >= (low[2] ?? 0) &&
                k <= (high[2] ?? 0),
            )
            .map(({ i, j, k }) => packVoxelKey(i, j, k)),
        );
        assert.deepEqual(new Set(found), expected);
        assert.equal(found.length, expected.size);
      }),
    );
  });

  it('stops a box walk when the visitor says so', () => {
    const index = new LinearOctree(1, 6);
    for (let i = 0; i < 10; i += 1) index.set(packVoxelKey(i, 0, 0), i);
    let visited = 0;
    const stopped = index.visitLeavesInBox(-100, -100, -100, 100, 100, 100, () => {
      visited += 1;
      return visited === 3;
    });
    assert.equal(stopped, true);
    assert.equal(visited, 3);
  });

  it('refuses a resolution or depth it cannot index', () => {
    assert.throws(() => new LinearOctree(0, 10), KeelError);
    assert.throws(() => new LinearOctree(Number.NaN, 10), KeelError);
    assert.throws(() => new LinearOctree(0.05, 17), KeelError);
    assert.throws(() => new LinearOctree(0.05, 0), KeelError);
  });
});
