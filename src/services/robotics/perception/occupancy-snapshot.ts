/**
 * The wire form of an {@link OccupancyOctree}: what one robot sends another to share its map.
 * It is validated with zod and capped in size before anything is built from it.
 */
import { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { MAX_OCTREE_DEPTH } from './linear-octree.ts';

/** The largest snapshot accepted by default, in voxels (about 30 MB of JSON). */
export const MAX_SNAPSHOT_VOXELS = 1_000_000;

const probability = z.number().gt(0).lt(1);

/** The tunable settings of an occupancy octree, probabilities as OctoMap states them. */
export const OccupancySettingsSchema = z
  .object({
    /** Voxel edge in metres. */
    resolution: z.number().positive().max(100),
    /** Levels above the voxels: the map spans resolution · 2^depth metres per axis. */
    depth: z.number().int().min(1).max(MAX_OCTREE_DEPTH),
    /** The probability a return makes its voxel occupied (> 0.5). */
    probabilityHit: probability.gt(0.5),
    /** The probability a beam through a voxel leaves it occupied (< 0.5). */
    probabilityMiss: probability.lt(0.5),
    /** Beliefs are clamped to [clampingMin, clampingMax] so the map can still change. */
    clampingMin: probability,
    clampingMax: probability,
    /** A voxel is occupied when its probability is above this. */
    occupancyThreshold: probability,
  })
  .strict()
  .refine(
    (settings) =>
      settings.clampingMin < settings.occupancyThreshold &&
      settings.occupancyThreshold < settings.clampingMax,
    { message: 'need clampingMin < occupancyThreshold < clampingMax' },
  );

export type OccupancySettings = z.infer<typeof OccupancySettingsSchema>;

/** The defaults of OctoMap, at 5 cm voxels and 16 levels (a cube 3.3 km on a side). */
export const DEFAULT_OCCUPANCY_SETTINGS: OccupancySettings = Object.freeze({
  resolution: 0.05,
  depth: 16,
  probabilityHit: 0.7,
  probabilityMiss: 0.4,
  clampingMin: 0.12,
  clampingMax: 0.97,
  occupancyThreshold: 0.5,
});

const voxelIndex = z
  .number()
  .int()
  .min(0)
  .max(2 ** MAX_OCTREE_DEPTH - 1);

export const OccupancySnapshotSchema = z
  .object({
    format: z.literal('keel.occupancy-octree'),
    version: z.literal(1),
    settings: OccupancySettingsSchema,
    /** `[i, j, k, logOdds]` per stored voxel. */
    voxels: z.array(z.tuple([voxelIndex, voxelIndex, voxelIndex, z.number()])),
  })
  .strict();

export type OccupancySnapshot = z.infer<typeof OccupancySnapshotSchema>;

/**
 * Validates a snapshot: the shape, the size cap (checked before the voxels are parsed), that
 * every index fits the depth and every log-odds lies within the clamping range.
 *
 * @throws KeelError `KEEL_PAYLOAD_TOO_LARGE` over the cap, `KEEL_INVALID_ARGUMENT` otherwise.
 * @example
 * ```ts
 * const snapshot = parseOccupancySnapshot(JSON.parse(message), { maxVoxels: 200_000 });
 * ```
 */
export function parseOccupancySnapshot(
  value: unknown,
  options: { readonly maxVoxels?: number } = {},
): OccupancySnapshot {
  const maxVoxels = options.maxVoxels ?? MAX_SNAPSHOT_VOXELS;
  const voxels = (value as { voxels?: unknown } | null)?.voxels;
  if (Array.isArray(voxels) && voxels.length > maxVoxels) {
    throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', 'the occupancy snapshot has too many voxels', {
      details: { voxels: voxels.length, maxVoxels },
    });
  }
  const parsed = OccupancySnapshotSchema.safeParse(value);
  if (!parsed.success) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'the occupancy snapshot is not valid', {
      details: { issues: parsed.error.issues.slice(0, 10) },
    });
  }
  const { settings } = parsed.data;
  const cells = 2 ** settings.depth;
  const low = Math.log(settings.clampingMin / (1 - settings.clampingMin)) - 1e-9;
  const high = Math.log(settings.clampingMax / (1 - settings.clampingMax)) + 1e-9;
  const bad = parsed.data.voxels.findIndex(
    ([i, j, k, logOdds]) =>
      i >= cells || j >= cells || k >= cells || !(logOdds >= low && logOdds <= high),
  );
  if (bad >= 0) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'an occupancy snapshot voxel is out of range', {
      details: { index: bad, voxel: parsed.data.voxels[bad], depth: settings.depth },
    });
  }
  return parsed.data;
}
