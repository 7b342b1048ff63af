import { z } from 'zod';

const finite = z.number().finite();
const point = z.strictObject({ x: finite, y: finite });

/** The rover's `program.settings` in its manifest. */
export const RoverSettingsSchema = z.strictObject({
  /** The model alias; default the manifest's `models.default`. */
  model: z.string().min(1).max(128).optional(),
  /** The robot to observe (`hal.observe` resource). */
  robotId: z.string().min(1).max(64).default('rover-1'),
  /** Where the rover charges; it returns there when the battery runs low. */
  dock: point.default({ x: 1, y: 1 }),
  lowBattery: z.number().min(0).max(1).default(0.2),
  /** Waypoints visited in turn while there is no other goal; empty: ask the LLM instead. */
  patrol: z.array(point).max(256).default([]),
  /** Planning area; default 15 m around where the run starts. */
  bounds: z.strictObject({ minX: finite, minY: finite, maxX: finite, maxY: finite }).optional(),
  cruiseSpeed: finite.positive().default(0.5),
  /** How far the base's centre keeps from obstacles when planning, m. */
  clearance: finite.positive().default(0.5),
  goalTolerance: finite.positive().default(0.3),
  /** Observation cycles before the run stops (each waits up to `observeWaitMs`). */
  maxCycles: z.int().min(1).max(100_000).default(3000),
  observeWaitMs: z.int().min(0).max(2000).default(250),
  /** LLM turns before the run stops. */
  maxDecisions: z.int().min(1).max(1000).default(40),
  /** Plans that fail in a row before a goal is given up. */
  maxReplans: z.int().min(1).max(1000).default(20),
});

export type RoverSettings = z.output<typeof RoverSettingsSchema>;
