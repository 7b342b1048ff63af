/**
 * A small behavior tree for the rover's reflexes: composites that tick their children in
 * order (a selector until one does not fail, a sequence until one does not succeed) and
 * leaves that test a condition or take an action. Each tick walks the tree from the root,
 * so a higher-priority branch (low battery, an obstacle ahead) pre-empts a lower one.
 */

export type NodeStatus = 'success' | 'failure' | 'running';

export interface BehaviorNode<Board> {
  readonly name: string;
  tick(board: Board): Promise<NodeStatus>;
}

/**
 * Ticks children in order; returns the first status that is not `failure`.
 *
 * @example
 * ```ts
 * const root = selector('root', [sequence('dock', [lowBattery, goToDock]), patrol]);
 * await root.tick(board);
 * ```
 */
export function selector<Board>(
  name: string,
  children: readonly BehaviorNode<Board>[],
): BehaviorNode<Board> {
  return {
    name,
    async tick(board) {
      for (const child of children) {
        const status = await child.tick(board);
        if (status !== 'failure') return status;
      }
      return 'failure';
    },
  };
}

/** Ticks children in order; returns the first status that is not `success`. */
export function sequence<Board>(
  name: string,
  children: readonly BehaviorNode<Board>[],
): BehaviorNode<Board> {
  return {
    name,
    async tick(board) {
      for (const child of children) {
        const status = await child.tick(board);
        if (status !== 'success') return status;
      }
      return 'success';
    },
  };
}

/** A leaf that succeeds when `test` holds and fails otherwise. */
export function condition<Board>(
  name: string,
  test: (board: Board) => boolean,
): BehaviorNode<Board> {
  return { name, tick: async (board) => (test(board) ? 'success' : 'failure') };
}

/** A leaf that does something and says how it went. */
export function action<Board>(
  name: string,
  act: (board: Board) => Promise<NodeStatus>,
): BehaviorNode<Board> {
  return { name, tick: act };
}
