import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { packVoxelKey } from './linear-octree.ts';
import { VoxelHashMap } from './voxel-hash-map.ts';

describe('VoxelHashMap', () => {
  it('stores, replaces and removes values for 48-bit keys', () => {
    const map = new VoxelHashMap();
    const key = packVoxelKey(65_535, 65_535, 65_535);
    assert.equal(map.set(key, 1.5), true);
    assert.equal(map.set(key, 2.5), false);
    assert.equal(map.get(key, 0), 2.5);
    assert.equal(map.has(key), true);
    assert.equal(map.size, 1);
    assert.equal(map.delete(key), true);
    assert.equal(map.delete(key), false);
    assert.equal(map.get(key, -7), -7);
    assert.equal(map.size, 0);
  });

  it('grows past its initial capacity and keeps every entry', () => {
    const map = new VoxelHashMap(4);
    for (let index = 0; index < 5_000; index += 1)
      map.set(packVoxelKey(index, index % 7, 3), index);
    assert.equal(map.size, 5_000);
    for (let index = 0; index < 5_000; index += 1)
      assert.equal(map.get(packVoxelKey(index, index % 7, 3), -1), index);
    assert.equal([...map.entries()].length, 5_000);
  });

  it('keeps capacity but forgets everything when cleared', () => {
    const map = new VoxelHashMap();
    for (let index = 0; index < 100; index += 1) map.set(index, index);
    map.clear();
    assert.equal(map.size, 0);
    assert.equal(map.has(5), false);
    assert.deepEqual([...map.entries()], []);
  });

  it('behaves like a Map under any sequence of sets and deletes', () => {
    // Small key ranges force long probe runs, so backward-shift deletion is exercised.
    // Few distinct keys keep the table small, so probe runs often wrap past its end.
    const key = fc
      .oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 11 }))
      .map((value) => packVoxelKey(value % 3, value, value >> 4));
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), key, value: fc.double({ noNaN: true }) }),
      fc.record({ kind: fc.constant('delete' as const), key }),
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 400 }), (operations) => {
        const map = new VoxelHashMap(2);
        const reference = new Map<number, number>();
        for (const step of operations) {
          if (step.kind === 'set') {
            assert.equal(map.set(step.key, step.value), !reference.has(step.key));
            reference.set(step.key, step.value);
          } else {
            assert.equal(map.delete(step.key), reference.delete(step.key));
          }
          assert.equal(map.size, reference.size);
        }
        for (const [stored, value] of reference) assert.equal(map.get(stored, Number.NaN), value);
        assert.deepEqual(
          [...map.entries()].sort((left, right) => left[0] - right[0]),
          [...reference.entries()].sort((left, right) => left[0] - right[0]),
        );
      }),
      { numRuns: 300 },
    );
  });
});
