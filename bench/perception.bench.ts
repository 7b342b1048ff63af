/**
 * Perception for the motion safety kernel. (a) Ingesting a 720-beam planar laser scan (12 m
 * range, 5 cm voxels) into the occupancy octree end to end — validation, the transform-tree
 * lookup at the scan's stamp, projection, free-space clearing and marking — while the robot
 * drives a loop through a furnished room and a person walks across it. The same-run baseline
 * is the classic way to clear free space: walking every cell along every beam (3D DDA, as
 * OctoMap does) and updating each in a hash map. (b) The swept-footprint collision query
 * against the populated 3D map (walls, pillars, furniture at every height), for random
 * commands from random free poses; the baseline tests the same sampled poses against every
 * occupied voxel.
 */
import { quaternionFromYaw } from '../src/services/robotics/geometry/quaternion.ts';
import {
  type Pose2D,
  planarTransform,
  rigidTransform,
} from '../src/services/robotics/geometry/rigid-transform.ts';
import type { Vector3 } from '../src/services/robotics/geometry/vector3.ts';
import { OccupancyOctree } from '../src/services/robotics/perception/occupancy-octree.ts';
import {
  type LaserScan,
  ScanProjector,
} from '../src/services/robotics/perception/scan-projector.ts';
import {
  poseAt,
  SweptFootprint,
  type VelocityCommand,
} from '../src/services/robotics/perception/swept-footprint.ts';
import { TransformTree } from '../src/services/robotics/perception/transform-tree.ts';
import { VoxelHashMap } from '../src/services/robotics/perception/voxel-hash-map.ts';
import { type BenchRow, median, percentile, round } from './bench-support.ts';

const RESOLUTION = 0.05;
const BEAMS = 720;
const RANGE_MAX = 12;
const LASER_HEIGHT = 0.32;
const SCAN_POSES = 200;
const SCAN_WARMUP = 300;
const SCAN_RUNS = 1_500;
const BASELINE_SCAN_RUNS = 40;
const QUERY_WARMUP = 1_000;
const QUERY_RUNS = 5_000;
const BASELINE_QUERY_RUNS = 60;

// ---------------------------------------------------------------------------------------------
// The room: 20 m × 16 m, walls 2.4 m high, pillars to the ceiling, furniture 0.8 m high, and a
// person (a 0.25 m cylinder, 1.8 m high) who walks across it.

interface Box2D {
  readonly minX: number;
  readonly minY: number;
  readonly maxX: number;
  readonly maxY: number;
  readonly height: number;
}

interface Cylinder {
  readonly x: number;
  readonly y: number;
  readonly radius: number;
  readonly height: number;
}

const ROOM = { minX: -8, minY: -6, maxX: 12, maxY: 10, height: 2.4 };
const FURNITURE: readonly Box2D[] = [
  { minX: 4, minY: 4, maxX: 6, maxY: 5, height: 0.8 },
  { minX: -5, minY: -4, maxX: -3.5, maxY: -1, height: 0.8 },
  { minX: 8, minY: -3, maxX: 9, maxY: 1, height: 1.2 },
];
const PILLARS: readonly Cylinder[] = [
  { x: 3, y: -2, radius: 0.3, height: ROOM.height },
  { x: -2, y: 5, radius: 0.4, height: ROOM.height },
  { x: 7, y: 7, radius: 0.25, height: ROOM.height },
];

function personAt(step: number): Cylinder {
  return { x: -4 + (step % 100) * 0.1, y: 2.5, radius: 0.25, height: 1.8 };
}

/** Distance along a horizontal beam from (x, y, z) to the first surface, or +∞. */
function castRange(
  x: number,
  y: number,
  z: number,
  angle: number,
  cylinders: readonly Cylinder[],
): number {
  const dx = Math.cos(angle);
  const dy = Math.sin(angle);
  let best = Number.POSITIVE_INFINITY;
  if (z >= 0 && z <= ROOM.height) {
    for (const wall of [ROOM.minX, ROOM.maxX]) {
      const t = (wall - x) / dx;
      if (t > 0) best = Math.min(best, t);
    }
    for (const wall of [ROOM.minY, ROOM.maxY]) {
      const t = (wall - y) / dy;
      if (t > 0) best = Math.min(best, t);
    }
  }
  for (const box of FURNITURE) {
    if (z > box.height) continue;
    const t1 = (box.minX - x) / dx;
    const t2 = (box.maxX - x) / dx;
    const t3 = (box.minY - y) / dy;
    const t4 = (box.maxY - y) / dy;
    const near = Math.max(Math.min(t1, t2), Math.min(t3, t4));
    const far = Math.min(Math.max(t1, t2), Math.max(t3, t4));
    if (near <= far && near > 0) best = Math.min(best, near);
  }
  for (const cylinder of cylinders) {
    if (z > cylinder.height) continue;
    const fx = x - cylinder.x;
    const fy = y - cylinder.y;
    const b = fx * dx + fy * dy;
    const discriminant = b * b - (fx * fx + fy * fy - cylinder.radius * cylinder.radius);
    if (discriminant < 0) continue;
    const t = -b - Math.sqrt(discriminant);
    if (t > 0) best = Math.min(best, t);
  }
  return best;
}

/** Builds the 3D map by sweeping 2880-beam scans at every voxel layer from a few places. */
function populatedMap(): OccupancyOctree {
  const map = new OccupancyOctree({ resolution: RESOLUTION });
  const viewpoints = [
    { x: 0.3, y: 0.4 },
    { x: 6, y: 2 },
    { x: -4, y: 7 },
  ];
  for (const viewpoint of viewpoints) {
    for (let z = RESOLUTION / 2; z < ROOM.height; z += RESOLUTION) {
      const points: Vector3[] = [];
      for (let beam = 0; beam < 2_880; beam += 1) {
        const angle = -Math.PI + (beam * 2 * Math.PI) / 2_880;
        const range = castRange(viewpoint.x, viewpoint.y, z, angle, PILLARS);
        if (Number.isFinite(range)) {
          points.push({
            x: viewpoint.x + range * Math.cos(angle),
            y: viewpoint.y + range * Math.sin(angle),
            z,
          });
        }
      }
      map.insertScan({ x: viewpoint.x, y: viewpoint.y, z }, points, 40);
    }
  }
  return map;
}

// ---------------------------------------------------------------------------------------------
// (a) Scan ingest.

interface TimedScan {
  readonly pose: Pose2D;
  readonly scan: LaserScan;
}

function scansAlongLoop(): TimedScan[] {
  return Array.from({ length: SCAN_POSES }, (_, step) => {
    const heading = (step / SCAN_POSES) * 2 * Math.PI;
    const pose = {
      x: 1 + 2 * Math.cos(heading),
      y: 1.5 + 1.5 * Math.sin(heading),
      yaw: heading + Math.PI / 2,
    };
    const cylinders = [...PILLARS, personAt(step)];
    const ranges = new Float32Array(BEAMS);
    for (let beam = 0; beam < BEAMS; beam += 1) {
      const angle = pose.yaw - Math.PI + (beam * 2 * Math.PI) / BEAMS;
      const range = castRange(pose.x, pose.y, LASER_HEIGHT, angle, cylinders);
      ranges[beam] = range > RANGE_MAX ? Number.POSITIVE_INFINITY : range;
    }
    return {
      pose,
      scan: {
        frameId: 'laser',
        stampMs: step * 100,
        angleMin: -Math.PI,
        angleIncrement: (2 * Math.PI) / BEAMS,
        rangeMin: 0.05,
        rangeMax: RANGE_MAX,
        ranges,
      },
    };
  });
}

/**
 * The baseline: every cell along every beam (Amanatides–Woo), each updated in the same
 * allocation-free hash map the octree uses, so the ratio measures the algorithm alone.
 */
function walkEveryCell(
  cells: VoxelHashMap,
  origin: Vector3,
  endpoint: Vector3,
  hit: boolean,
): number {
  const offset = 2 ** 15;
  let i = Math.floor(origin.x / RESOLUTION);
  let j = Math.floor(origin.y / RESOLUTION);
  let k = Math.floor(origin.z / RESOLUTION);
  const endI = Math.floor(endpoint.x / RESOLUTION);
  const endJ = Math.floor(endpoint.y / RESOLUTION);
  const endK = Math.floor(endpoint.z / RESOLUTION);
  const dx = endpoint.x - origin.x;
  const dy = endpoint.y - origin.y;
  const dz = endpoint.z - origin.z;
  const stepI = Math.sign(dx);
  const stepJ = Math.sign(dy);
  const stepK = Math.sign(dz);
  const deltaX = stepI === 0 ? Number.POSITIVE_INFINITY : RESOLUTION / Math.abs(dx);
  const deltaY = stepJ === 0 ? Number.POSITIVE_INFINITY : RESOLUTION / Math.abs(dy);
  const deltaZ = stepK === 0 ? Number.POSITIVE_INFINITY : RESOLUTION / Math.abs(dz);
  // The ray parameter (0..1) at which each axis next crosses a cell face.
  let maxX =
    stepI === 0
      ? Number.POSITIVE_INFINITY
      : ((i + (stepI > 0 ? 1 : 0)) * RESOLUTION - origin.x) / dx;
  let maxY =
    stepJ === 0
      ? Number.POSITIVE_INFINITY
      : ((j + (stepJ > 0 ? 1 : 0)) * RESOLUTION - origin.y) / dy;
  let maxZ =
    stepK === 0
      ? Number.POSITIVE_INFINITY
      : ((k + (stepK > 0 ? 1 : 0)) * RESOLUTION - origin.z) / dz;
  let walked = 0;
  const key = () => ((i + offset) * 65_536 + (j + offset)) * 65_536 + (k + offset);
  while ((i !== endI || j !== endJ || k !== endK) && walked < 100_000) {
    const cell = key();
    cells.set(cell, Math.max(-2, cells.get(cell, 0) - 0.4));
    walked += 1;
    if (maxX < maxY && maxX < maxZ) {
      i += stepI;
      maxX += deltaX;
    } else if (maxY < maxZ) {
      j += stepJ;
      maxY += deltaY;
    } else {
      k += stepK;
      maxZ += deltaZ;
    }
  }
  if (hit) {
    const cell = key();
    cells.set(cell, Math.min(3.5, cells.get(cell, 0) + 0.85));
  }
  return walked;
}

function scanEndpoints(timed: TimedScan): {
  origin: Vector3;
  endpoints: Vector3[];
  hits: boolean[];
} {
  const { pose, scan } = timed;
  const origin = { x: pose.x, y: pose.y, z: LASER_HEIGHT };
  const endpoints: Vector3[] = [];
  const hits: boolean[] = [];
  for (let beam = 0; beam < BEAMS; beam += 1) {
    const range = scan.ranges[beam] ?? Number.NaN;
    const hit = range < RANGE_MAX;
    const distance = hit ? range : RANGE_MAX;
    const angle = pose.yaw + scan.angleMin + beam * scan.angleIncrement;
    endpoints.push({
      x: origin.x + distance * Math.cos(angle),
      y: origin.y + distance * Math.sin(angle),
      z: LASER_HEIGHT,
    });
    hits.push(hit);
  }
  return { origin, endpoints, hits };
}

function scanRows(map: OccupancyOctree): BenchRow[] {
  const scans = scansAlongLoop();
  const transforms = new TransformTree();
  transforms.setStatic('world', 'odom', planarTransform(0, 0, 0));
  transforms.setStatic(
    'base_link',
    'laser',
    rigidTransform({ x: 0, y: 0, z: LASER_HEIGHT }, quaternionFromYaw(0)),
  );
  const projector = new ScanProjector({ transforms, octree: map });
  const ingest = new Float64Array(SCAN_RUNS);
  let misses = 0;
  for (let run = -SCAN_WARMUP; run < SCAN_RUNS; run += 1) {
    const index = (run + SCAN_WARMUP) % SCAN_POSES;
    const timed = scans[index] as TimedScan;
    // Stamps keep rising across laps, as a real robot's do.
    const stampMs = (run + SCAN_WARMUP) * 100;
    transforms.set(
      'odom',
      'base_link',
      planarTransform(timed.pose.x, timed.pose.y, timed.pose.yaw),
      stampMs,
    );
    const scan = { ...timed.scan, stampMs };
    const started = performance.now();
    const summary = projector.insert(scan);
    const elapsed = performance.now() - started;
    if (run >= 0) {
      ingest[run] = elapsed;
      misses += summary.misses;
    }
  }
  const baselineCells = new VoxelHashMap();
  const baseline: number[] = [];
  let walked = 0;
  for (let run = 0; run < BASELINE_SCAN_RUNS + 5; run += 1) {
    const { origin, endpoints, hits } = scanEndpoints(scans[run % SCAN_POSES] as TimedScan);
    const started = performance.now();
    let cells = 0;
    for (let beam = 0; beam < BEAMS; beam += 1) {
      cells += walkEveryCell(
        baselineCells,
        origin,
        endpoints[beam] as Vector3,
        hits[beam] as boolean,
      );
    }
    const elapsed = performance.now() - started;
    if (run >= 5) {
      baseline.push(elapsed);
      walked += cells;
    }
  }
  const sorted = Array.from(ingest).sort((left, right) => left - right);
  const ingestMedian = median(sorted);
  const baselineMedian = median(baseline);
  return [
    {
      name: 'every-cell ray walk of a 720-beam scan (OctoMap-style clearing), median',
      value: round(baselineMedian, 2),
      unit: 'ms',
      details: { cellsPerScan: Math.round(walked / BASELINE_SCAN_RUNS), runs: BASELINE_SCAN_RUNS },
    },
    {
      name: '720-beam scan ingest (validate, TF lookup, project, clear, mark), median',
      value: round(ingestMedian, 3),
      unit: 'ms',
      baseline: 'every-cell ray walk',
      ratio: round(ingestMedian / baselineMedian, 3),
      target: 'median < 1 ms',
      met: ingestMedian < 1,
      details: {
        p99Ms: round(percentile(sorted, 0.99), 3),
        pointsPerSecond: Math.round((BEAMS / ingestMedian) * 1000),
        clearedPerScan: round(misses / SCAN_RUNS, 1),
        mapVoxels: map.size,
        runs: SCAN_RUNS,
      },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// (b) Swept-footprint collision queries.

const FOOTPRINT = { kind: 'rectangle', length: 0.6, width: 0.45 } as const;
const HEIGHT_BAND = { zMin: 0.05, zMax: 1.5 };
const SAFETY_MARGIN = 0.05;
const HORIZON_SECONDS = 2;

interface Query {
  readonly start: Pose2D;
  readonly command: VelocityCommand;
}

/** Deterministic pseudo-random numbers in [0, 1). */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function queries(map: OccupancyOctree, count: number): Query[] {
  const random = randomSource(7);
  const found: Query[] = [];
  while (found.length < count) {
    const start = {
      x: ROOM.minX + 1 + random() * (ROOM.maxX - ROOM.minX - 2),
      y: ROOM.minY + 1 + random() * (ROOM.maxY - ROOM.minY - 2),
      yaw: (random() * 2 - 1) * Math.PI,
    };
    if (map.nearestObstacle({ x: start.x, y: start.y, z: 0.5 }, 0.6) !== undefined) continue;
    found.push({ start, command: { linear: random() * 2 - 1, angular: (random() * 2 - 1) * 1.5 } });
  }
  return found;
}

/** The baseline: the same sampled poses, each tested against every occupied voxel. */
function bruteForceFirstCollision(voxels: readonly Vector3[], query: Query): number | undefined {
  const boundingRadius = Math.hypot(FOOTPRINT.length / 2, FOOTPRINT.width / 2);
  const speed = Math.abs(query.command.linear) + Math.abs(query.command.angular) * boundingRadius;
  const spacing = RESOLUTION / 2;
  const steps = speed === 0 ? 0 : Math.ceil((speed * HORIZON_SECONDS) / spacing);
  const stepSeconds = steps === 0 ? 0 : HORIZON_SECONDS / steps;
  const inflation = SAFETY_MARGIN + (speed * stepSeconds) / 2;
  const half = RESOLUTION / 2;
  for (let sample = 0; sample <= steps; sample += 1) {
    const pose = poseAt(query.start, query.command, sample * stepSeconds);
    const cosine = Math.cos(pose.yaw);
    const sine = Math.sin(pose.yaw);
    const reach = half * (Math.abs(cosine) + Math.abs(sine));
    for (const voxel of voxels) {
      if (voxel.z + half < HEIGHT_BAND.zMin || voxel.z - half > HEIGHT_BAND.zMax) continue;
      const dx = voxel.x - pose.x;
      const dy = voxel.y - pose.y;
      if (
        Math.abs(dx * cosine + dy * sine) <= FOOTPRINT.length / 2 + inflation + reach &&
        Math.abs(-dx * sine + dy * cosine) <= FOOTPRINT.width / 2 + inflation + reach
      ) {
        return sample * stepSeconds;
      }
    }
  }
  return undefined;
}

function queryRows(map: OccupancyOctree): BenchRow[] {
  const sweep = new SweptFootprint({
    footprint: FOOTPRINT,
    heightBand: HEIGHT_BAND,
    safetyMargin: SAFETY_MARGIN,
  });
  const all = queries(map, QUERY_WARMUP + QUERY_RUNS);
  const latencies = new Float64Array(QUERY_RUNS);
  let collisions = 0;
  for (let run = 0; run < all.length; run += 1) {
    const query = all[run] as Query;
    const started = performance.now();
    const hit = sweep.firstCollision(map, { ...query, horizonSeconds: HORIZON_SECONDS });
    const elapsed = performance.now() - started;
    if (run >= QUERY_WARMUP) {
      latencies[run - QUERY_WARMUP] = elapsed * 1000;
      if (hit !== undefined) collisions += 1;
    }
  }
  const voxels = map.occupiedInBox(
    { x: -100, y: -100, z: -100 },
    { x: 100, y: 100, z: 100 },
    1_000_000,
  );
  const baseline: number[] = [];
  for (let run = 0; run < BASELINE_QUERY_RUNS; run += 1) {
    const started = performance.now();
    bruteForceFirstCollision(voxels, all[run] as Query);
    baseline.push((performance.now() - started) * 1000);
  }
  const sorted = Array.from(latencies).sort((left, right) => left - right);
  const p99 = percentile(sorted, 0.99);
  const baselineSorted = baseline.sort((left, right) => left - right);
  const baselineP99 = percentile(baselineSorted, 0.99);
  return [
    {
      name: 'brute-force swept-footprint check (every occupied voxel at every pose), p99',
      value: round(baselineP99, 1),
      unit: 'µs',
      details: {
        median: round(median(baselineSorted), 1),
        occupiedVoxels: voxels.length,
        runs: BASELINE_QUERY_RUNS,
      },
    },
    {
      name: 'swept-footprint collision query (0.6×0.45 m, 2 s horizon), p99',
      value: round(p99, 1),
      unit: 'µs',
      baseline: 'brute force over every occupied voxel',
      ratio: round(p99 / baselineP99, 4),
      target: 'p99 < 100 µs',
      met: p99 < 100,
      details: {
        median: round(median(sorted), 1),
        collidingFraction: round(collisions / QUERY_RUNS, 2),
        runs: QUERY_RUNS,
      },
    },
  ];
}

export async function run(): Promise<BenchRow[]> {
  const map = populatedMap();
  const queryResults = queryRows(map);
  const scanResults = scanRows(map);
  return [...scanResults, ...queryResults];
}
