import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { KeelError } from '../../../../platform/errors/keel-error.ts';

const finite = z.number().finite();

const ObstacleSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('circle'), x: finite, y: finite, radius: finite.positive() }),
  z
    .strictObject({
      type: z.literal('box'),
      minX: finite,
      minY: finite,
      maxX: finite,
      maxY: finite,
    })
    .refine((box) => box.minX < box.maxX && box.minY < box.maxY, 'box min must be below max'),
]);

/**
 * A simulated world on a floor plane: walls around `bounds`, circular and box obstacles, and
 * the robot's dock. Loadable from a JSON file ({@link loadSimWorld}).
 */
export const SimWorldSchema = z.strictObject({
  bounds: z
    .strictObject({ minX: finite, minY: finite, maxX: finite, maxY: finite })
    .refine((box) => box.minX < box.maxX && box.minY < box.maxY, 'bounds min must be below max'),
  obstacles: z.array(ObstacleSchema).max(10_000).default([]),
  /** Where the robot charges; it starts there unless told otherwise. */
  dock: z.strictObject({ x: finite, y: finite, yaw: finite.default(0) }).optional(),
  /**
   * The simulated robot's build and starting state (`SimRobotOptions`: start pose, battery,
   * noise, LiDAR…), checked by the robot itself.
   */
  robot: z.record(z.string(), z.unknown()).optional(),
});

export type SimObstacle = z.output<typeof ObstacleSchema>;

const MAX_WORLD_FILE_BYTES = 4 * 1024 * 1024;

/**
 * The geometry queries the simulated sensors and the contact check need.
 *
 * @example
 * ```ts
 * const world = new SimWorld({ bounds: { minX: 0, minY: 0, maxX: 10, maxY: 10 }, obstacles: [] });
 * world.rayCast(1, 1, 0, 20); // 9: the east wall
 * ```
 */
export class SimWorld {
  readonly description: z.output<typeof SimWorldSchema>;

  constructor(description: unknown) {
    const parsed = SimWorldSchema.safeParse(description);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `sim world ${issue?.path.join('.') || '(world)'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    this.description = parsed.data;
  }

  get obstacles(): readonly SimObstacle[] {
    return this.description.obstacles;
  }

  /**
   * Distance from `(x, y)` along `angle` to the first wall or obstacle, or `Infinity` when
   * nothing is within `maxRange`.
   */
  rayCast(x: number, y: number, angle: number, maxRange: number): number {
    const directionX = Math.cos(angle);
    const directionY = Math.sin(angle);
    let nearest = this.#wallDistance(x, y, directionX, directionY);
    for (const obstacle of this.description.obstacles) {
      const distance =
        obstacle.type === 'circle'
          ? rayCircle(x, y, directionX, directionY, obstacle)
          : rayBox(x, y, directionX, directionY, obstacle);
      if (distance < nearest) nearest = distance;
    }
    return nearest <= maxRange ? nearest : Number.POSITIVE_INFINITY;
  }

  /** Whether a disc of `radius` at `(x, y)` touches a wall or an obstacle. */
  collides(x: number, y: number, radius: number): boolean {
    const bounds = this.description.bounds;
    if (
      x - radius < bounds.minX ||
      y - radius < bounds.minY ||
      x + radius > bounds.maxX ||
      y + radius > bounds.maxY
    ) {
      return true;
    }
    return this.description.obstacles.some((obstacle) => {
      if (obstacle.type === 'circle') {
        return Math.hypot(x - obstacle.x, y - obstacle.y) < obstacle.radius + radius;
      }
      const nearestX = Math.min(Math.max(x, obstacle.minX), obstacle.maxX);
      const nearestY = Math.min(Math.max(y, obstacle.minY), obstacle.maxY);
      return Math.hypot(x - nearestX, y - nearestY) < radius;
    });
  }

  #wallDistance(x: number, y: number, directionX: number, directionY: number): number {
    const bounds = this.description.bounds;
    let nearest = Number.POSITIVE_INFINITY;
    if (directionX > 0) nearest = Math.min(nearest, (bounds.maxX - x) / directionX);
    if (directionX < 0) nearest = Math.min(nearest, (bounds.minX - x) / directionX);
    if (directionY > 0) nearest = Math.min(nearest, (bounds.maxY - y) / directionY);
    if (directionY < 0) nearest = Math.min(nearest, (bounds.minY - y) / directionY);
    return Math.max(0, nearest);
  }
}

function rayCircle(
  x: number,
  y: number,
  directionX: number,
  directionY: number,
  circle: { x: number; y: number; radius: number },
): number {
  const offsetX = x - circle.x;
  const offsetY = y - circle.y;
  const along = offsetX * directionX + offsetY * directionY;
  const discriminant = along * along - (offsetX * offsetX + offsetY * offsetY - circle.radius ** 2);
  if (discriminant < 0) return Number.POSITIVE_INFINITY;
  const root = Math.sqrt(discriminant);
  const near = -along - root;
  if (near >= 0) return near;
  return -along + root >= 0 ? 0 : Number.POSITIVE_INFINITY;
}

function rayBox(
  x: number,
  y: number,
  directionX: number,
  directionY: number,
  box: { minX: number; minY: number; maxX: number; maxY: number },
): number {
  let entry = Number.NEGATIVE_INFINITY;
  let exit = Number.POSITIVE_INFINITY;
  for (const [origin, direction, low, high] of [
    [x, directionX, box.minX, box.maxX],
    [y, directionY, box.minY, box.maxY],
  ] as const) {
    if (direction === 0) {
      if (origin < low || origin > high) return Number.POSITIVE_INFINITY;
      continue;
    }
    const first = (low - origin) / direction;
    const second = (high - origin) / direction;
    entry = Math.max(entry, Math.min(first, second));
    exit = Math.min(exit, Math.max(first, second));
  }
  if (exit < Math.max(entry, 0)) return Number.POSITIVE_INFINITY;
  return Math.max(entry, 0);
}

/**
 * Reads a sim world from a JSON file (at most 4 MiB), or throws `KEEL_INVALID_ARGUMENT`
 * saying what is wrong with it.
 *
 * @example
 * ```ts
 * const world = await loadSimWorld('worlds/warehouse.json');
 * ```
 */
export async function loadSimWorld(path: string): Promise<SimWorld> {
  const size = (await stat(path)).size;
  if (size > MAX_WORLD_FILE_BYTES) {
    throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', `sim world file ${path} is over 4 MiB`);
  }
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `sim world file ${path} is not valid JSON`, {
      cause: error,
    });
  }
  return new SimWorld(value);
}
