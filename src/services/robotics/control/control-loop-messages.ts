/** The messages between the brain and the control loop thread (besides the shared mailbox). */

import type { LaserScan } from '../hal/hal-drivers.ts';
import type { FusedEstimate } from '../perception/odometry-imu-fusion.ts';

/**
 * Requests that move something carry the e-stop epoch they were sent in (the loop refuses
 * one from before the latest stop) and their order among everything the brain sent.
 */
export type ToLoopMessage =
  | {
      readonly type: 'trajectory';
      readonly id: number;
      readonly epoch: number;
      readonly order: number;
      readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>;
      readonly maxSpeed: number;
    }
  | {
      readonly type: 'arm';
      readonly id: number;
      readonly epoch: number;
      readonly x: number;
      readonly y: number;
      readonly z: number;
    }
  | {
      readonly type: 'relay';
      readonly id: number;
      readonly epoch: number;
      readonly relayId: string;
      readonly state: boolean;
    }
  | { readonly type: 'stop-motion'; readonly id: number }
  | { readonly type: 'capture'; readonly id: number }
  | { readonly type: 'timing'; readonly id: number };

export type FromLoopMessage =
  | { readonly type: 'ready'; readonly threadId: number | undefined }
  | {
      readonly type: 'sensors';
      readonly scan: LaserScan;
      /** Odometry and IMU fused in the loop (a complementary filter), when the scan was taken. */
      readonly estimate: FusedEstimate;
    }
  | { readonly type: 'reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | {
      readonly type: 'reply';
      readonly id: number;
      readonly ok: false;
      readonly error: { readonly code: string; readonly message: string };
    }
  | {
      readonly type: 'trajectory-end';
      readonly id: number;
      readonly outcome: 'reached' | 'stopped' | 'replaced' | 'blocked';
    }
  | { readonly type: 'fault'; readonly message: string };

/** Timing of the loop, for the jitter benchmark and `keel robot status`. */
export interface LoopTiming {
  readonly ticks: number;
  readonly overruns: number;
  /** |actual − scheduled| start of each tick, ms, newest last (bounded). */
  readonly lateness: number[];
}
