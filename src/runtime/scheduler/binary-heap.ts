/**
 * A binary min-heap ordered by a comparison function: `peek` and `pop` give the smallest item,
 * `push` and `pop` cost O(log n). Items must not change their order while they are in the heap.
 *
 * @example
 * ```ts
 * const heap = new BinaryHeap<number>((left, right) => left - right);
 * heap.push(3);
 * heap.push(1);
 * heap.pop(); // 1
 * ```
 */
export class BinaryHeap<Item> {
  readonly #items: Item[] = [];
  readonly #compare: (left: Item, right: Item) => number;

  constructor(compare: (left: Item, right: Item) => number) {
    this.#compare = compare;
  }

  get size(): number {
    return this.#items.length;
  }

  /** The smallest item, without removing it. */
  peek(): Item | undefined {
    return this.#items[0];
  }

  push(item: Item): void {
    const items = this.#items;
    items.push(item);
    let index = items.length - 1;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex] as Item;
      if (this.#compare(item, parent) >= 0) break;
      items[index] = parent;
      index = parentIndex;
    }
    items[index] = item;
  }

  /** Removes and returns the smallest item. */
  pop(): Item | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let index = 0;
    for (;;) {
      const leftIndex = 2 * index + 1;
      if (leftIndex >= items.length) break;
      const rightIndex = leftIndex + 1;
      let childIndex = leftIndex;
      if (
        rightIndex < items.length &&
        this.#compare(items[rightIndex] as Item, items[leftIndex] as Item) < 0
      ) {
        childIndex = rightIndex;
      }
      const child = items[childIndex] as Item;
      if (this.#compare(last, child) <= 0) break;
      items[index] = child;
      index = childIndex;
    }
    items[index] = last;
    return top;
  }
}
