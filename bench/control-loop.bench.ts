/**
 * The control loop's period jitter at 200 Hz while the main thread is saturated with work
 * and garbage-collector pressure (the brain at its worst). Keel's loop runs in its own thread
 * (`RobotBody`); the same-run baseline is the same fixed-rate loop scheduled with `setTimeout`
 * on the main thread under the same load — what the loop would suffer if the brain could
 * delay it. Lateness is |actual − scheduled| start of each tick. The loop thread asks for
 * SCHED_FIFO (`chrt`); the row says which scheduling it got.
 */
import { RobotBody } from '../src/services/robotics/control/robot-body.ts';
import { silentLogger } from '../test/support/silent-logger.ts';
import { type BenchRow, percentile, round } from './bench-support.ts';

const RATE_HZ = 200;
const LOAD_MS = 6000;
const WORLD = {
  bounds: { minX: -10, minY: -10, maxX: 10, maxY: 10 },
  obstacles: [{ type: 'circle', x: 3, y: 0, radius: 0.5 }],
};

/** Keeps the main thread busy: allocation-heavy work in 20 ms slices, yielding briefly. */
async function saturate(untilMs: number): Promise<number> {
  let retained: unknown[] = [];
  let slices = 0;
  while (performance.now() < untilMs) {
    const sliceEnd = performance.now() + 20;
    while (performance.now() < sliceEnd) {
      const garbage = Array.from({ length: 2000 }, (_, index) => ({
        index,
        text: `item ${index}`,
      }));
      retained.push(garbage);
      if (retained.length > 200) retained = [];
    }
    slices += 1;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return slices;
}

function mainThreadLoop(untilMs: number): Promise<number[]> {
  const periodMs = 1000 / RATE_HZ;
  const lateness: number[] = [];
  let scheduled = performance.now() + periodMs;
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      lateness.push(Math.abs(now - scheduled));
      if (now >= untilMs) {
        resolve(lateness);
        return;
      }
      scheduled += periodMs;
      if (scheduled < now) scheduled = now + periodMs;
      setTimeout(tick, Math.max(0, scheduled - performance.now()));
    };
    setTimeout(tick, periodMs);
  });
}

export async function run(): Promise<BenchRow[]> {
  const body = await RobotBody.start({
    body: { type: 'sim', world: WORLD, robot: { lidar: { beams: 720 } } },
    rateHz: RATE_HZ,
    logger: silentLogger(),
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = await body.timing();
    await saturate(performance.now() + LOAD_MS);
    const after = await body.timing();
    const loaded = after.lateness.slice(-(after.ticks - before.ticks));
    const keel = loaded.sort((left, right) => left - right);

    const baselineRun = mainThreadLoop(performance.now() + LOAD_MS);
    await saturate(performance.now() + LOAD_MS);
    const baseline = (await baselineRun).sort((left, right) => left - right);

    const keelP99 = percentile(keel, 0.99);
    const baselineP99 = percentile(baseline, 0.99);
    return [
      {
        name: `control loop lateness p99 at ${RATE_HZ} Hz, main thread saturated + GC`,
        value: round(keelP99, 3),
        unit: 'ms',
        baseline: 'same loop on the main thread (setTimeout)',
        ratio: round(keelP99 / baselineP99, 6),
        target: '< 1 ms',
        met: keelP99 < 1,
        details: {
          scheduling: body.scheduling.priority,
          ticks: keel.length,
          p50: round(percentile(keel, 0.5), 3),
          max: round(keel[keel.length - 1] ?? Number.NaN, 3),
          overruns: after.overruns - before.overruns,
          baselineP50: round(percentile(baseline, 0.5), 3),
          baselineP99: round(baselineP99, 3),
          baselineTicks: baseline.length,
        },
      },
    ];
  } finally {
    await body.close();
  }
}
