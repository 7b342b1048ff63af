import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BinaryHeap } from './binary-heap.ts';

describe('BinaryHeap', () => {
  it('is empty when new', () => {
    const heap = new BinaryHeap<number>((left, right) => left - right);
    assert.equal(heap.size, 0);
    assert.equal(heap.peek(), undefined);
    assert.equal(heap.pop(), undefined);
  });

  it('pops items smallest first, for any mix of pushes and pops', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: -50, max: 50 }), { nil: undefined })),
        (steps) => {
          const heap = new BinaryHeap<number>((left, right) => left - right);
          const model: number[] = [];
          for (const step of steps) {
            if (step === undefined) {
              model.sort((left, right) => left - right);
              assert.equal(heap.pop(), model.shift());
            } else {
              heap.push(step);
              model.push(step);
            }
            assert.equal(heap.size, model.length);
            assert.equal(heap.peek(), model.length === 0 ? undefined : Math.min(...model));
          }
        },
      ),
    );
  });
});
