/**
 * A path planner for the rover: A* over an occupancy grid built from the obstacles the robot
 * has observed, each inflated by the robot's clearance, then shortened to the fewest
 * waypoints whose straight legs stay clear (line of sight on the inflated grid). Pure and
 * deterministic, so a replayed run plans the same path.
 */

export interface PlannerOptions {
  /** Grid cell size, m. */
  readonly cell: number;
  /** How far from an obstacle the base's centre must stay, m. */
  readonly clearance: number;
  /** The area to plan in. */
  readonly bounds: {
    readonly minX: number;
    readonly minY: number;
    readonly maxX: number;
    readonly maxY: number;
  };
  /** The most cells A* may expand before giving up. */
  readonly maxExpansions?: number;
}

export interface Point {
  readonly x: number;
  readonly y: number;
}

/**
 * Plans from `start` to `goal` around `obstacles` (points, m). Returns the waypoints after the
 * start (the goal last), or `undefined` when no path exists. A start inside the inflated zone
 * (the robot already close to something) may leave it: its own cell is treated as free.
 *
 * @example
 * ```ts
 * planPath({ x: 1, y: 1 }, { x: 9, y: 2 }, obstacles, { cell: 0.2, clearance: 0.45, bounds });
 * ```
 */
export function planPath(
  start: Point,
  goal: Point,
  obstacles: ReadonlyArray<readonly [number, number]>,
  options: PlannerOptions,
): Point[] | undefined {
  const grid = new InflatedGrid(obstacles, options, start);
  const from = grid.cellOf(start);
  const to = grid.cellOf(goal);
  if (from === undefined || to === undefined) return undefined;
  if (grid.blocked(to)) return undefined;
  if (from === to) return [goal];
  const cells = aStar(grid, from, to, options.maxExpansions ?? 200_000);
  if (cells === undefined) return undefined;
  const points = cells.map((cell) => grid.centreOf(cell));
  points[points.length - 1] = goal;
  return simplify(grid, start, points);
}

/** Whether every leg of `path` from `start` is clear of the inflated obstacles. */
export function pathIsClear(
  start: Point,
  path: readonly Point[],
  obstacles: ReadonlyArray<readonly [number, number]>,
  options: PlannerOptions,
): boolean {
  const grid = new InflatedGrid(obstacles, options, start);
  let from = start;
  for (const point of path) {
    if (!grid.lineClear(from, point)) return false;
    from = point;
  }
  return true;
}

class InflatedGrid {
  readonly width: number;
  readonly height: number;
  readonly #cells: Uint8Array;
  readonly #options: PlannerOptions;
  readonly #escape: Point;

  /**
   * `robot`: the robot's position. Cells within the clearance of it count as free, so a
   * robot that already stands closer than the clearance to something can still move away.
   */
  constructor(
    obstacles: ReadonlyArray<readonly [number, number]>,
    options: PlannerOptions,
    robot: Point,
  ) {
    this.#options = options;
    this.#escape = robot;
    const { bounds, cell, clearance } = options;
    this.width = Math.max(1, Math.ceil((bounds.maxX - bounds.minX) / cell));
    this.height = Math.max(1, Math.ceil((bounds.maxY - bounds.minY) / cell));
    this.#cells = new Uint8Array(this.width * this.height);
    const reach = Math.ceil(clearance / cell);
    for (const [x, y] of obstacles) {
      const column = Math.floor((x - bounds.minX) / cell);
      const row = Math.floor((y - bounds.minY) / cell);
      for (let dy = -reach; dy <= reach; dy += 1) {
        for (let dx = -reach; dx <= reach; dx += 1) {
          const cx = column + dx;
          const cy = row + dy;
          if (cx < 0 || cy < 0 || cx >= this.width || cy >= this.height) continue;
          const centreX = bounds.minX + (cx + 0.5) * cell;
          const centreY = bounds.minY + (cy + 0.5) * cell;
          if (Math.hypot(centreX - x, centreY - y) <= clearance)
            this.#cells[cy * this.width + cx] = 1;
        }
      }
    }
  }

  cellOf(point: Point): number | undefined {
    const { bounds, cell } = this.#options;
    const column = Math.floor((point.x - bounds.minX) / cell);
    const row = Math.floor((point.y - bounds.minY) / cell);
    if (column < 0 || row < 0 || column >= this.width || row >= this.height) return undefined;
    return row * this.width + column;
  }

  centreOf(index: number): Point {
    const { bounds, cell } = this.#options;
    return {
      x: bounds.minX + ((index % this.width) + 0.5) * cell,
      y: bounds.minY + (Math.floor(index / this.width) + 0.5) * cell,
    };
  }

  blocked(index: number): boolean {
    if (this.#cells[index] !== 1) return false;
    const centre = this.centreOf(index);
    return (
      Math.hypot(centre.x - this.#escape.x, centre.y - this.#escape.y) > this.#options.clearance
    );
  }

  /** Samples the segment every quarter cell. */
  lineClear(from: Point, to: Point): boolean {
    const length = Math.hypot(to.x - from.x, to.y - from.y);
    const steps = Math.max(1, Math.ceil(length / (this.#options.cell / 4)));
    for (let step = 0; step <= steps; step += 1) {
      const index = this.cellOf({
        x: from.x + ((to.x - from.x) * step) / steps,
        y: from.y + ((to.y - from.y) * step) / steps,
      });
      if (index === undefined || this.blocked(index)) return false;
    }
    return true;
  }
}

const NEIGHBOURS: ReadonlyArray<readonly [number, number, number]> = [
  [1, 0, 1],
  [-1, 0, 1],
  [0, 1, 1],
  [0, -1, 1],
  [1, 1, Math.SQRT2],
  [1, -1, Math.SQRT2],
  [-1, 1, Math.SQRT2],
  [-1, -1, Math.SQRT2],
];

function aStar(
  grid: InflatedGrid,
  from: number,
  to: number,
  maxExpansions: number,
): number[] | undefined {
  const size = grid.width * grid.height;
  const cost = new Float64Array(size).fill(Number.POSITIVE_INFINITY);
  const parent = new Int32Array(size).fill(-1);
  const closed = new Uint8Array(size);
  const heap = new MinHeap();
  const goalX = to % grid.width;
  const goalY = Math.floor(to / grid.width);
  const heuristic = (index: number) =>
    Math.hypot((index % grid.width) - goalX, Math.floor(index / grid.width) - goalY);
  cost[from] = 0;
  heap.push(from, heuristic(from));
  let expansions = 0;
  while (heap.size > 0) {
    const current = heap.pop();
    if (current === to) break;
    if (closed[current] === 1) continue;
    closed[current] = 1;
    expansions += 1;
    if (expansions > maxExpansions) return undefined;
    const x = current % grid.width;
    const y = Math.floor(current / grid.width);
    for (const [dx, dy, step] of NEIGHBOURS) {
      const nx = x + dx;
      const ny = y + dy;
      if (nx < 0 || ny < 0 || nx >= grid.width || ny >= grid.height) continue;
      const next = ny * grid.width + nx;
      if (grid.blocked(next) || closed[next] === 1) continue;
      if (
        dx !== 0 &&
        dy !== 0 &&
        (grid.blocked(y * grid.width + nx) || grid.blocked(ny * grid.width + x))
      )
        continue;
      const candidate = (cost[current] ?? 0) + step;
      if (candidate < (cost[next] ?? Number.POSITIVE_INFINITY)) {
        cost[next] = candidate;
        parent[next] = current;
        heap.push(next, candidate + heuristic(next));
      }
    }
  }
  if (parent[to] === -1 && from !== to) return undefined;
  const path: number[] = [];
  for (let at = to; at !== from; at = parent[at] ?? from) path.push(at);
  return path.reverse();
}

function simplify(grid: InflatedGrid, start: Point, points: Point[]): Point[] {
  const result: Point[] = [];
  let anchor = start;
  let index = 0;
  while (index < points.length) {
    let furthest = index;
    for (let candidate = points.length - 1; candidate > index; candidate -= 1) {
      const point = points[candidate];
      if (point !== undefined && grid.lineClear(anchor, point)) {
        furthest = candidate;
        break;
      }
    }
    const chosen = points[furthest];
    if (chosen === undefined) break;
    result.push(chosen);
    anchor = chosen;
    index = furthest + 1;
  }
  return result;
}

class MinHeap {
  readonly #items: number[] = [];
  readonly #priorities: number[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(item: number, priority: number): void {
    this.#items.push(item);
    this.#priorities.push(priority);
    let index = this.#items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if ((this.#priorities[parent] ?? 0) <= priority) break;
      this.#swap(index, parent);
      index = parent;
    }
  }

  pop(): number {
    const top = this.#items[0] ?? -1;
    const lastItem = this.#items.pop();
    const lastPriority = this.#priorities.pop();
    if (this.#items.length > 0 && lastItem !== undefined && lastPriority !== undefined) {
      this.#items[0] = lastItem;
      this.#priorities[0] = lastPriority;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let smallest = index;
        if (
          left < this.#items.length &&
          (this.#priorities[left] ?? 0) < (this.#priorities[smallest] ?? 0)
        )
          smallest = left;
        if (
          right < this.#items.length &&
          (this.#priorities[right] ?? 0) < (this.#priorities[smallest] ?? 0)
        )
          smallest = right;
        if (smallest === index) break;
        this.#swap(index, smallest);
        index = smallest;
      }
    }
    return top;
  }

  #swap(left: number, right: number): void {
    const item = this.#items[left] ?? 0;
    const priority = this.#priorities[left] ?? 0;
    this.#items[left] = this.#items[right] ?? 0;
    this.#priorities[left] = this.#priorities[right] ?? 0;
    this.#items[right] = item;
    this.#priorities[right] = priority;
  }
}
