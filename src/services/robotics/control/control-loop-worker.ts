/**
 * The control loop thread: owns the robot's HAL drivers (the simulator here), ticks at a
 * fixed rate, and reads its commands from the shared {@link ControlMailbox} and a message
 * port it polls without yielding. The node's main thread — agents, LLM calls, its garbage
 * collector — runs elsewhere and cannot delay a tick. Every exit path drives the actuators
 * to zero energy first.
 */

import { readlinkSync } from 'node:fs';
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';
import type { LaserScan } from '../hal/hal-drivers.ts';
import { HalRegistry } from '../hal/hal-registry.ts';
import type { SimRobotOptions } from '../hal/sim/sim-robot.ts';
import { type DriveParams, parseDriveParams } from '../intents/robot-intent.ts';
import { OdometryImuFusion } from '../perception/odometry-imu-fusion.ts';
import type { FromLoopMessage, ToLoopMessage } from './control-loop-messages.ts';
import { ControlMailbox, type VelocityCommand } from './control-mailbox.ts';
import type { LoopBody } from './loop-body.ts';
import { OutboundTwist } from './outbound-twist.ts';
import { RosbridgeLoopBody } from './rosbridge-loop-body.ts';
import { SimLoopBody } from './sim-loop-body.ts';
import { TrajectoryFollower } from './trajectory-follower.ts';

export interface ControlLoopWorkerData {
  readonly buffer: SharedArrayBuffer;
  readonly port: MessagePort;
  readonly rateHz: number;
  readonly body: LoopBodySpecification;
  /** A velocity command not refreshed within this many ms is dropped (the brain's deadman). */
  readonly commandTimeoutMs: number;
  /** The body's own speed caps, applied whatever the command says. */
  readonly maxLinear: number;
  readonly maxAngular: number;
  /** Forward motion stops when the LiDAR sees something this close ahead, m. */
  readonly reflexStopDistance: number;
  readonly sensorRateHz: number;
  /** Motion stops when the brain's heartbeat is older than this, ms. */
  readonly heartbeatTimeoutMs: number;
}

/** Which body the loop drives: the simulator, or a robot behind rosbridge. */
export type LoopBodySpecification =
  | { readonly type: 'sim'; readonly world: unknown; readonly robot: SimRobotOptions }
  | {
      readonly type: 'rosbridge';
      /** Odometry and scans from the bridge's I/O thread. */
      readonly inbound: MessagePort;
      readonly outboundBuffer: SharedArrayBuffer;
      readonly wheelbase: number;
      readonly maxWheelSpeed: number;
    };

function createBody(specification: LoopBodySpecification): LoopBody {
  return specification.type === 'sim'
    ? new SimLoopBody(specification.world, specification.robot)
    : new RosbridgeLoopBody(
        specification.inbound,
        OutboundTwist.attach(specification.outboundBuffer),
        specification,
      );
}

const TIMING_SAMPLES = 20_000;
const SPIN_MS = 0.25;

function now(): number {
  return performance.timeOrigin + performance.now();
}

function nearestAhead(scan: LaserScan, cone: number): number {
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
  const body = createBody(data.body);
  const hal = new HalRegistry(body.drivers, () => mailbox.engaged);
  // Odometry and IMU fused at the loop's own rate: the trajectory follower steers by it, and
  // the brain's perception takes it with each sensor sweep.
  const fusion = new OdometryImuFusion({ initialPose: body.startPose() ?? { x: 0, y: 0, yaw: 0 } });
  let poseKnown = body.startPose() !== undefined;
  const follower = new TrajectoryFollower({
    maxLinear: data.maxLinear,
    maxAngular: data.maxAngular,
  });
  const periodMs = 1000 / data.rateHz;
  const sensorEvery = Math.max(1, Math.round(data.rateHz / data.sensorRateHz));
  const lateness = new Float64Array(TIMING_SAMPLES);
  const command: VelocityCommand = {
    sequence: 0,
    linear: 0,
    angular: 0,
    epoch: 0,
    order: 0,
    human: false,
  };
  let lastSequence = 0;
  let commandAt = Number.NEGATIVE_INFINITY;
  /** The velocity command being driven, and the order of what the brain sent last. */
  let velocity = { linear: 0, angular: 0 };
  let latestOrder = 0;
  let mode = 0;
  let trajectoryId = -1;
  let ticks = 0;
  let overruns = 0;
  let ahead = Number.POSITIVE_INFINITY;
  let heartbeat = mailbox.heartbeat;
  let heartbeatAt = now();
  let last = now();
  let scheduled = last;

  const endTrajectory = (outcome: 'reached' | 'stopped' | 'replaced' | 'blocked') => {
    if (trajectoryId >= 0) post({ type: 'trajectory-end', id: trajectoryId, outcome });
    trajectoryId = -1;
    follower.clear();
  };

  /** A request from before the latest e-stop is refused, even if the latch is clear again. */
  const assertCurrent = (epoch: number) => {
    if (mailbox.engaged || epoch !== mailbox.epoch) throw new KeelError('KEEL_ESTOP_ENGAGED');
  };

  const handle = (message: ToLoopMessage) => {
    try {
      switch (message.type) {
        case 'trajectory': {
          assertCurrent(message.epoch);
          if (now() < mailbox.overrideUntil) {
            throw new KeelError(
              'KEEL_POLICY_VIOLATION',
              'a human is driving the robot: AI motion is suspended',
            );
          }
          // Checked again on the loop's side, exactly as the gate's rules read a trajectory.
          const { points } = parseDriveParams('trajectory', {
            points: message.points,
            maxSpeed: message.maxSpeed,
          }) as Extract<DriveParams, { type: 'trajectory' }>;
          if (message.order < latestOrder) {
            // A velocity command sent after it already replaced it.
            post({
              type: 'reply',
              id: message.id,
              ok: true,
              value: { accepted: false, superseded: true },
            });
            post({ type: 'trajectory-end', id: message.id, outcome: 'replaced' });
            return;
          }
          latestOrder = message.order;
          endTrajectory('replaced');
          follower.start(points, Math.min(message.maxSpeed, data.maxLinear));
          trajectoryId = message.id;
          mode = 2;
          post({ type: 'reply', id: message.id, ok: true, value: { accepted: true } });
          return;
        }
        case 'arm':
          assertCurrent(message.epoch);
          post({ type: 'reply', id: message.id, ok: true, value: hal.moveEndEffector(message) });
          return;
        case 'relay':
          if (message.state) assertCurrent(message.epoch);
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
          if (!mailbox.engaged) hal.drive({ linear: 0, angular: 0 }, now());
          post({ type: 'reply', id: message.id, ok: true, value: { stopped: true } });
          return;
        case 'capture': {
          const frame = body.capture(now());
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
      const failure = toKeelError(error, 'KEEL_HAL_FAULT');
      post({
        type: 'reply',
        id: message.id,
        ok: false,
        error: { code: failure.code, message: failure.message },
      });
    }
  };

  const tick = (at: number, dtSeconds: number) => {
    // A command is acted on only if it was written in the present e-stop epoch, so a command
    // from before a stop is never revived by the release, however quickly it came.
    let fresh: VelocityCommand | undefined;
    if (mailbox.readVelocity(command) && command.sequence !== lastSequence) {
      lastSequence = command.sequence;
      // While a human teleoperates, only the human's commands move the robot.
      const suspended = !command.human && now() < mailbox.overrideUntil;
      if (!mailbox.engaged && command.epoch === mailbox.epoch && !suspended) fresh = { ...command };
    }
    for (
      let message = receiveMessageOnPort(port);
      message !== undefined;
      message = receiveMessageOnPort(port)
    ) {
      const request = message.message as ToLoopMessage;
      // What the brain sent in order wins in order: a velocity command written after this
      // trajectory request goes first, so the request sees it as newer.
      if (fresh !== undefined && request.type === 'trajectory' && fresh.order > request.order) {
        latestOrder = Math.max(latestOrder, fresh.order);
      }
      handle(request);
    }
    if (fresh !== undefined && fresh.order >= latestOrder) {
      latestOrder = fresh.order;
      velocity = { linear: fresh.linear, angular: fresh.angular };
      commandAt = at;
      endTrajectory('replaced');
      mode = 1;
    }
    // The brain's heartbeat: if its main thread stops (wedged, or gone without its signal
    // handler), motion stops too.
    const beat = mailbox.heartbeat;
    if (beat !== heartbeat) {
      heartbeat = beat;
      heartbeatAt = at;
    } else if (mode !== 0 && at - heartbeatAt > data.heartbeatTimeoutMs) {
      endTrajectory('stopped');
      mode = 0;
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
          linear = velocity.linear;
          angular = velocity.angular;
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
      if (!Number.isFinite(linear) || !Number.isFinite(angular)) {
        linear = 0;
        angular = 0;
      }
      try {
        hal.drive(mode === 0 ? { linear: 0, angular: 0 } : { linear, angular }, at);
      } catch (error) {
        // The latch was set between the check above and the drive: zero energy, and carry on.
        if (!(error instanceof KeelError && error.code === 'KEEL_ESTOP_ENGAGED')) throw error;
        hal.zeroEnergy();
      }
    }
    body.step(dtSeconds, at);
    const odometry = body.odometry(at);
    const imu = body.imu(at);
    if (!poseKnown) {
      // A bridged robot tells its pose with its first odometry.
      const start = body.startPose();
      if (start !== undefined) {
        fusion.reset(start);
        poseKnown = true;
      }
    }
    // A robot that reports its own odometry pose (behind a bridge) is believed: the loop
    // only carries its estimate forward between two reports.
    const reported = body.reportedPose();
    if (reported !== undefined && poseKnown) fusion.reset(reported);
    if (odometry !== undefined && poseKnown) {
      fusion.update({
        stampMs: at,
        odometry: { linear: odometry.linear, angular: odometry.angular },
        ...(imu === undefined
          ? {}
          : {
              imu:
                imu.yaw === undefined
                  ? { yawRate: imu.yawRate }
                  : { yawRate: imu.yawRate, yaw: imu.yaw },
            }),
      });
    }
    if (ticks % sensorEvery === 0) {
      const scan = body.scan(at);
      if (scan !== undefined) ahead = nearestAhead(scan, Math.PI / 6);
      if (scan !== undefined && odometry !== undefined && poseKnown) {
        const estimate = fusion.estimate;
        post({
          type: 'sensors',
          scan,
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
    }
    const state = body.state();
    mailbox.writeState({
      x: state.x,
      y: state.y,
      yaw: state.yaw,
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
      // The whole time since the last tick, however late: the body's odometry is fused over it.
      tick(at, Math.max(0, (at - last) / 1000));
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
    body.step(periodMs / 1000, now());
  }
}

runLoop(workerData as ControlLoopWorkerData);
