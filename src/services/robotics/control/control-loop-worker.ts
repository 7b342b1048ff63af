/**
 * The control loop thread: owns the robot's HAL drivers (the simulator here), ticks at a
 * fixed rate, and reads its commands from the shared {@link ControlMailbox} and a message
 * port it polls without yielding. The node's main thread — agents, LLM calls, its garbage
 * collector — runs elsewhere and cannot delay a tick. Every exit path drives the actuators
 * to zero energy first.
 */

import { readlinkSync } from 'node:fs';
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { HalRegistry } from '../hal/hal-registry.ts';
import { SimRobot, type SimRobotOptions } from '../hal/sim/sim-robot.ts';
import { SimWorld } from '../hal/sim/sim-world.ts';
import { OdometryImuFusion } from '../perception/odometry-imu-fusion.ts';
import type { FromLoopMessage, LoopScan, ToLoopMessage } from './control-loop-messages.ts';
import { ControlMailbox } from './control-mailbox.ts';
import { TrajectoryFollower } from './trajectory-follower.ts';

export interface ControlLoopWorkerData {
  readonly buffer: SharedArrayBuffer;
  readonly port: MessagePort;
  readonly rateHz: number;
  readonly world: unknown;
  readonly robot: SimRobotOptions;
  /** A velocity command not refreshed within this many ms is dropped (the brain's deadman). */
  readonly commandTimeoutMs: number;
  /** The body's own speed caps, applied whatever the command says. */
  readonly maxLinear: number;
  readonly maxAngular: number;
  /** Forward motion stops when the LiDAR sees something this close ahead, m. */
  readonly reflexStopDistance: number;
  readonly sensorRateHz: number;
}

const TIMING_SAMPLES = 20_000;
const SPIN_MS = 0.25;

function now(): number {
  return performance.timeOrigin + performance.now();
}

function errorOf(error: unknown): { code: string; message: string } {
  if (error instanceof KeelError) return { code: error.code, message: error.message };
  return {
    code: 'KEEL_HAL_FAULT',
    message: error instanceof Error ? error.message : String(error),
  };
}

function nearestAhead(scan: LoopScan, cone: number): number {
  let nearest = Number.POSITIVE_INFINITY;
  for (let beam = 0; beam < scan.ranges.length; beam += 1) {
    const angle = scan.angleMin + beam * scan.angleIncrement;
    if (Math.abs(angle) > cone) continue;
    const range = scan.ranges[beam] ?? Number.POSITIVE_INFINITY;
    if (range < nearest) nearest = range;
  }
  return nearest;
}

/** This thread's Linux thread id, so the brain can raise its scheduling priority. */
function ownThreadId(): number | undefined {
  try {
    // Start-up only: /proc/thread-self names this thread's task directory.
    const task = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isSafeInteger(task) ? task : undefined;
  } catch {
    return undefined;
  }
}

function runLoop(data: ControlLoopWorkerData): void {
  const mailbox = ControlMailbox.attach(data.buffer);
  const port = data.port;
  const post = (message: FromLoopMessage) => port.postMessage(message);
  const robot = new SimRobot(new SimWorld(data.world), data.robot);
  const hal = new HalRegistry(robot.drivers, () => mailbox.engaged);
  // Odometry and IMU fused at the loop's own rate: the trajectory follower steers by it, and
  // the brain's perception takes it with each sensor sweep.
  const fusion = new OdometryImuFusion({ initialPose: robot.base.pose });
  const follower = new TrajectoryFollower({
    maxLinear: data.maxLinear,
    maxAngular: data.maxAngular,
  });
  const periodMs = 1000 / data.rateHz;
  const sensorEvery = Math.max(1, Math.round(data.rateHz / data.sensorRateHz));
  const lateness = new Float64Array(TIMING_SAMPLES);
  const command = new Float64Array(3);
  let lastSequence = 0;
  let commandAt = Number.NEGATIVE_INFINITY;
  let mode = 0;
  let trajectoryId = -1;
  let ticks = 0;
  let overruns = 0;
  let ahead = Number.POSITIVE_INFINITY;
  let last = now();
  let scheduled = last;

  const endTrajectory = (outcome: 'reached' | 'stopped' | 'replaced' | 'blocked') => {
    if (trajectoryId >= 0) post({ type: 'trajectory-end', id: trajectoryId, outcome });
    trajectoryId = -1;
    follower.clear();
  };

  const handle = (message: ToLoopMessage) => {
    try {
      switch (message.type) {
        case 'trajectory':
          if (mailbox.engaged) throw new KeelError('KEEL_ESTOP_ENGAGED');
          endTrajectory('replaced');
          follower.start(message.points, message.maxSpeed);
          trajectoryId = message.id;
          mode = 2;
          post({ type: 'reply', id: message.id, ok: true, value: { accepted: true } });
          return;
        case 'arm':
          post({ type: 'reply', id: message.id, ok: true, value: hal.moveEndEffector(message) });
          return;
        case 'relay':
          hal.setRelay(message.relayId, message.state);
          post({
            type: 'reply',
            id: message.id,
            ok: true,
            value: { relayId: message.relayId, state: message.state },
          });
          return;
        case 'stop-motion':
          endTrajectory('stopped');
          mode = 0;
          hal.drive({ linear: 0, angular: 0 }, now());
          post({ type: 'reply', id: message.id, ok: true, value: { stopped: true } });
          return;
        case 'capture': {
          const frame = robot.camera.capture(now());
          post({ type: 'reply', id: message.id, ok: true, value: frame });
          return;
        }
        case 'timing': {
          const count = Math.min(ticks, TIMING_SAMPLES);
          const start = ticks > TIMING_SAMPLES ? ticks % TIMING_SAMPLES : 0;
          const samples: number[] = [];
          for (let index = 0; index < count; index += 1) {
            samples.push(lateness[(start + index) % TIMING_SAMPLES] ?? 0);
          }
          post({
            type: 'reply',
            id: message.id,
            ok: true,
            value: { ticks, overruns, lateness: samples },
          });
          return;
        }
      }
    } catch (error) {
      post({ type: 'reply', id: message.id, ok: false, error: errorOf(error) });
    }
  };

  const tick = (at: number, dtSeconds: number) => {
    // The mailbox first, then the port: a request sent after a velocity command wins.
    // A command written before an e-stop is consumed while it is set, so a release never
    // revives it.
    if (mailbox.readVelocity(command) && command[0] !== lastSequence) {
      lastSequence = command[0] ?? 0;
      if (!mailbox.engaged) {
        commandAt = at;
        endTrajectory('replaced');
        mode = 1;
      }
    }
    for (
      let message = receiveMessageOnPort(port);
      message !== undefined;
      message = receiveMessageOnPort(port)
    ) {
      handle(message.message as ToLoopMessage);
    }
    if (mailbox.engaged) {
      if (mode !== 0) endTrajectory('stopped');
      mode = 0;
      hal.zeroEnergy();
    } else {
      let linear = 0;
      let angular = 0;
      if (mode === 1) {
        if (at - commandAt > data.commandTimeoutMs) {
          mode = 0;
        } else {
          linear = command[1] ?? 0;
          angular = command[2] ?? 0;
        }
      } else if (mode === 2) {
        const step = follower.step({ ...fusion.estimate, stampMs: at });
        if (step === undefined) {
          endTrajectory('reached');
          mode = 0;
        } else {
          linear = step.linear;
          angular = step.angular;
        }
      }
      linear = Math.max(-data.maxLinear, Math.min(data.maxLinear, linear));
      angular = Math.max(-data.maxAngular, Math.min(data.maxAngular, angular));
      // The body's own reflex: never drive forwards into something the LiDAR sees.
      if (linear > 0 && ahead < data.reflexStopDistance) {
        linear = 0;
        if (mode === 2) {
          endTrajectory('blocked');
          mode = 0;
          angular = 0;
        }
      }
      if (mode !== 0) hal.drive({ linear, angular }, at);
      else hal.drive({ linear: 0, angular: 0 }, at);
    }
    robot.step(dtSeconds, at);
    const odometry = robot.odometry.read(at);
    const imu = robot.imu.read(at);
    fusion.update({
      stampMs: at,
      odometry: { linear: odometry.linear, angular: odometry.angular },
      imu:
        imu.yaw === undefined ? { yawRate: imu.yawRate } : { yawRate: imu.yawRate, yaw: imu.yaw },
    });
    if (ticks % sensorEvery === 0) {
      const scan = robot.scan(at);
      ahead = nearestAhead(scan, Math.PI / 6);
      const estimate = fusion.estimate;
      post({
        type: 'sensors',
        scan,
        odometry,
        imu,
        estimate: {
          x: estimate.x,
          y: estimate.y,
          yaw: estimate.yaw,
          linear: estimate.linear,
          angular: estimate.angular,
          stampMs: at,
        },
      });
    }
    const state = robot.state();
    mailbox.writeState({
      x: state.pose.x,
      y: state.pose.y,
      yaw: state.pose.yaw,
      linear: state.linear,
      angular: state.angular,
      battery: state.battery,
      contacts: state.contacts,
      ticks,
      overruns,
      mode,
      waypoint: follower.waypointIndex,
      nearestAhead: Number.isFinite(ahead) ? ahead : -1,
      charging: state.charging ? 1 : 0,
    });
  };

  post({ type: 'ready', threadId: ownThreadId() });
  try {
    while (!mailbox.shutdownRequested) {
      const at = now();
      lateness[ticks % TIMING_SAMPLES] = Math.abs(at - scheduled);
      tick(at, Math.min(0.05, Math.max(0, (at - last) / 1000)));
      last = at;
      ticks += 1;
      scheduled += periodMs;
      const after = now();
      if (after > scheduled) {
        // Missed a whole period: count it and start again from now rather than bursting.
        overruns += 1;
        scheduled = after;
        continue;
      }
      const remaining = scheduled - after;
      if (remaining > SPIN_MS) mailbox.sleep(remaining - SPIN_MS);
      while (now() < scheduled && !mailbox.shutdownRequested && !mailbox.engaged) {
        // Spin out the last fraction of a millisecond: Atomics.wait wakes late by up to that.
      }
    }
  } catch (error) {
    post({ type: 'fault', message: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    hal.zeroEnergy();
    robot.step(periodMs / 1000, now());
  }
}

runLoop(workerData as ControlLoopWorkerData);
