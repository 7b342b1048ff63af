import { once } from 'node:events';
import { MessageChannel, Worker } from 'node:worker_threads';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Logger, LogLevel } from '../../../platform/observability/logger.ts';
import { RosbridgeIo } from '../bridges/rosbridge/rosbridge-io.ts';
import type { ArmJoints } from '../hal/arm-inverse-kinematics.ts';
import type { CameraFrame } from '../hal/hal-drivers.ts';
import type { SimRobotOptions } from '../hal/sim/sim-robot.ts';
import type { FromLoopMessage, LoopTiming } from './control-loop-messages.ts';
import type { ControlLoopWorkerData, LoopBodySpecification } from './control-loop-worker.ts';
import { type BodyState, ControlMailbox, type EstopReason } from './control-mailbox.ts';
import { LoopRequests } from './loop-requests.ts';
import { raiseThreadPriority, type ThreadPriority } from './raise-thread-priority.ts';

/** The body the loop drives: the simulator, or a robot behind rosbridge. */
export type RobotBodySpecification =
  | { readonly type: 'sim'; readonly world: unknown; readonly robot?: SimRobotOptions }
  | {
      readonly type: 'rosbridge';
      readonly url: string;
      readonly wheelbase: number;
      readonly maxWheelSpeed: number;
      /** How often `/cmd_vel` goes out, Hz (default 20). */
      readonly publishHz?: number;
      readonly logLevel?: LogLevel;
    };

export interface RobotBodyOptions {
  readonly body: RobotBodySpecification;
  /** Control loop rate, Hz (1–1000; default 100). */
  readonly rateHz?: number;
  readonly commandTimeoutMs?: number;
  readonly maxLinear?: number;
  readonly maxAngular?: number;
  readonly reflexStopDistance?: number;
  readonly sensorRateHz?: number;
  /**
   * SCHED_FIFO priority to ask for the loop thread (1–99; default 40), or `false` to leave
   * it at normal priority. Without CAP_SYS_NICE it falls back to a raised nice level.
   */
  readonly realtimePriority?: number | false;
  /**
   * The watchdog: when the loop has not ticked for this long, the e-stop is set (reason
   * `watchdog`) and the loop thread is terminated. Default 500 ms.
   */
  readonly watchdogMs?: number;
  /**
   * The brain's heartbeat: motion stops when the main thread has not beaten for this long
   * (a wedged or dying brain), ms. Default 1000.
   */
  readonly heartbeatTimeoutMs?: number;
  /** How long a request to the loop (arm, relay, trajectory) may take, ms. */
  readonly requestTimeoutMs?: number;
  readonly logger: Logger;
}

export type SensorMessage = Extract<FromLoopMessage, { type: 'sensors' }>;
export type TrajectoryOutcome = Extract<FromLoopMessage, { type: 'trajectory-end' }>['outcome'];

/**
 * The robot's body as the brain sees it: a control loop thread that owns the HAL drivers,
 * the shared e-stop latch, and the requests the brain may make of it. The latch lives in the
 * brain's shared memory, so it stays set (and every motion refused) even after the loop
 * thread died; a dead loop also sets it, with the reason `fault`.
 *
 * @example
 * ```ts
 * const body = await RobotBody.start({ world, logger });
 * body.drive(0.3, 0);
 * body.engage('operator');   // every actuator to zero energy, every motion refused
 * await body.close();
 * ```
 */
export class RobotBody implements AsyncDisposable {
  readonly mailbox: ControlMailbox;
  readonly rateHz: number;
  /** How the loop thread is scheduled (real-time FIFO where the host allows it). */
  scheduling: { priority: ThreadPriority; detail: string } = {
    priority: 'normal',
    detail: 'not yet raised',
  };
  readonly #worker: Worker;
  /** The rosbridge I/O thread of a bridged body. */
  readonly #io: RosbridgeIo | undefined;
  readonly #requests: LoopRequests;
  readonly #sensorListeners = new Set<(message: SensorMessage) => void>();
  readonly #trajectoryWaiters = new Map<number, (outcome: TrajectoryOutcome) => void>();
  readonly #logger: Logger;
  /** The order of every command and request sent to the loop, so it applies them in order. */
  #order = 0;
  readonly #heartbeat: NodeJS.Timeout;
  #exited = false;
  readonly #watchdog: NodeJS.Timeout;
  #lastTicks = -1;
  #lastTickSeenAt = performance.now();
  #closing: Promise<void> | undefined;

  private constructor(
    worker: Worker,
    port: MessageChannel['port1'],
    mailbox: ControlMailbox,
    rateHz: number,
    options: RobotBodyOptions,
    io: RosbridgeIo | undefined,
  ) {
    this.#io = io;
    this.#worker = worker;
    this.mailbox = mailbox;
    this.rateHz = rateHz;
    this.#requests = new LoopRequests(port, options.requestTimeoutMs ?? 2000);
    this.#logger = options.logger;
    port.on('message', (message: FromLoopMessage) => this.#receive(message));
    mailbox.beat();
    this.#heartbeat = setInterval(() => mailbox.beat(), 100);
    this.#heartbeat.unref();
    const watchdogMs = options.watchdogMs ?? 500;
    this.#watchdog = setInterval(() => this.#checkLoop(watchdogMs), Math.max(10, watchdogMs / 5));
    this.#watchdog.unref();
    worker.on('error', (error) => {
      this.#logger.error({ err: error }, 'the control loop failed');
    });
    worker.on('exit', (code) => {
      this.#exited = true;
      clearInterval(this.#watchdog);
      clearInterval(this.#heartbeat);
      if (this.#closing === undefined) {
        this.mailbox.engage('fault'); // a no-op when the watchdog set it first
        this.#logger.error({ code }, 'the control loop stopped unexpectedly: e-stop engaged');
      }
      this.#requests.close();
      for (const waiter of this.#trajectoryWaiters.values()) waiter('stopped');
      this.#trajectoryWaiters.clear();
      port.close();
    });
  }

  /** Starts the control loop thread and resolves once it ticks. */
  static async start(options: RobotBodyOptions): Promise<RobotBody> {
    const rateHz = options.rateHz ?? 100;
    if (!Number.isInteger(rateHz) || rateHz < 1 || rateHz > 1000) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'the control loop rate must be 1–1000 Hz');
    }
    const mailbox = ControlMailbox.create();
    const channel = new MessageChannel();
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    const specification = options.body;
    const io =
      specification.type === 'rosbridge'
        ? RosbridgeIo.start({
            url: specification.url,
            mailbox,
            ...(specification.publishHz === undefined
              ? {}
              : { publishHz: specification.publishHz }),
            commandTimeoutMs,
            logLevel: specification.logLevel ?? 'info',
            logger: options.logger,
          })
        : undefined;
    const body: LoopBodySpecification =
      specification.type === 'sim'
        ? { type: 'sim', world: specification.world, robot: specification.robot ?? {} }
        : {
            type: 'rosbridge',
            inbound: (io as RosbridgeIo).loopPort,
            outboundBuffer: (io as RosbridgeIo).outbound.buffer,
            wheelbase: specification.wheelbase,
            maxWheelSpeed: specification.maxWheelSpeed,
          };
    const workerData: ControlLoopWorkerData = {
      buffer: mailbox.buffer,
      port: channel.port2,
      rateHz,
      body,
      commandTimeoutMs,
      maxLinear: options.maxLinear ?? 1,
      maxAngular: options.maxAngular ?? 1.5,
      reflexStopDistance: options.reflexStopDistance ?? 0.4,
      sensorRateHz: options.sensorRateHz ?? 10,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 1000,
    };
    const worker = new Worker(new URL('./control-loop-worker.ts', import.meta.url), {
      workerData,
      transferList: io === undefined ? [channel.port2] : [channel.port2, io.loopPort],
      name: 'keel-control-loop',
    });
    const ready = new Promise<number | undefined>((resolve, reject) => {
      const onMessage = (message: FromLoopMessage) => {
        if (message.type !== 'ready') return;
        channel.port1.off('message', onMessage);
        resolve(message.threadId);
      };
      channel.port1.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', () =>
        reject(new KeelError('KEEL_HAL_FAULT', 'the control loop ended while starting')),
      );
    });
    let threadId: number | undefined;
    try {
      threadId = await ready;
    } catch (error) {
      await worker.terminate();
      await io?.close();
      throw new KeelError('KEEL_HAL_FAULT', 'the control loop could not start', { cause: error });
    }
    const robotBody = new RobotBody(worker, channel.port1, mailbox, rateHz, options, io);
    const realtime = options.realtimePriority ?? 40;
    if (realtime === false) {
      robotBody.scheduling = { priority: 'normal', detail: 'normal priority (as configured)' };
    } else if (threadId === undefined) {
      robotBody.scheduling = { priority: 'normal', detail: 'normal priority (thread id unknown)' };
    } else {
      robotBody.scheduling = await raiseThreadPriority(threadId, realtime);
    }
    if (robotBody.scheduling.priority === 'normal') {
      options.logger.warn(
        { scheduling: robotBody.scheduling.detail },
        'the control loop runs at normal priority: other load on this machine can delay its ticks',
      );
    }
    return robotBody;
  }

  get engaged(): boolean {
    return this.mailbox.engaged;
  }

  /** Whether the control loop thread is alive. */
  get running(): boolean {
    return !this.#exited;
  }

  get estopReason(): EstopReason {
    return this.mailbox.reason;
  }

  /** Sets the e-stop latch: the loop drives every actuator to zero energy on its next tick. */
  engage(reason: Exclude<EstopReason, 'none'>): boolean {
    return this.mailbox.engage(reason);
  }

  /** Clears the latch (the caller audits it as an operator action). Refused on a dead loop. */
  release(): boolean {
    if (this.#exited) {
      throw new KeelError(
        'KEEL_HAL_FAULT',
        'the control loop is not running; restart the node before releasing the e-stop',
      );
    }
    return this.mailbox.release();
  }

  state(): BodyState | undefined {
    return this.mailbox.readState();
  }

  /** Sets a velocity command; the loop drops it after its command timeout unless refreshed. */
  drive(linear: number, angular: number): void {
    this.#assertMayMove();
    this.#assertNoOverride();
    this.#order += 1;
    this.mailbox.writeVelocity(linear, angular, this.#order);
  }

  /**
   * A human drives: the command goes to the loop marked as the human's, and agents' commands
   * and trajectories are ignored by the loop itself until `overrideUntil` (ms since the epoch).
   */
  teleop(linear: number, angular: number, overrideUntil: number): void {
    this.#assertMayMove();
    this.mailbox.overrideUntil = Math.max(this.mailbox.overrideUntil, overrideUntil);
    this.#order += 1;
    this.mailbox.writeVelocity(linear, angular, this.#order, true);
  }

  /** Starts following waypoints; `outcome` settles when the loop ends the trajectory. */
  async followTrajectory(
    points: ReadonlyArray<{ x: number; y: number }>,
    maxSpeed: number,
  ): Promise<{ id: number; outcome: Promise<TrajectoryOutcome> }> {
    this.#assertMayMove();
    this.#assertNoOverride();
    const id = this.#requests.reserve();
    const outcome = new Promise<TrajectoryOutcome>((resolve) =>
      this.#trajectoryWaiters.set(id, resolve),
    );
    this.#order += 1;
    const epoch = this.mailbox.epoch;
    try {
      await this.#requests.send({
        type: 'trajectory',
        id,
        epoch,
        order: this.#order,
        points,
        maxSpeed,
      });
    } catch (error) {
      this.#trajectoryWaiters.delete(id);
      throw error;
    }
    return { id, outcome };
  }

  async moveEndEffector(target: { x: number; y: number; z: number }): Promise<ArmJoints> {
    this.#assertMayMove();
    const epoch = this.mailbox.epoch;
    return this.#requests.send({
      type: 'arm',
      id: this.#requests.reserve(),
      epoch,
      ...target,
    }) as Promise<ArmJoints>;
  }

  async setRelay(relayId: string, state: boolean): Promise<unknown> {
    if (state) this.#assertMayMove();
    const epoch = this.mailbox.epoch;
    return this.#requests.send({
      type: 'relay',
      id: this.#requests.reserve(),
      epoch,
      relayId,
      state,
    });
  }

  stopMotion(): Promise<unknown> {
    return this.#requests.send({ type: 'stop-motion', id: this.#requests.reserve() });
  }

  capture(): Promise<CameraFrame> {
    return this.#requests.send({
      type: 'capture',
      id: this.#requests.reserve(),
    }) as Promise<CameraFrame>;
  }

  timing(): Promise<LoopTiming> {
    return this.#requests.send({
      type: 'timing',
      id: this.#requests.reserve(),
    }) as Promise<LoopTiming>;
  }

  /** Calls `listener` with every sensor sweep (LiDAR, odometry, IMU); returns the unsubscribe. */
  onSensors(listener: (message: SensorMessage) => void): () => void {
    this.#sensorListeners.add(listener);
    return () => this.#sensorListeners.delete(listener);
  }

  /** Stops the loop; it drives every actuator to zero energy before it exits. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#exited) {
        const exited = once(this.#worker, 'exit');
        this.mailbox.requestShutdown();
        const timer = setTimeout(() => {
          void this.#worker.terminate();
        }, 2000);
        await exited;
        clearTimeout(timer);
      }
      // A bridged robot: the loop wrote its zero twist on the way out; let it go out, then stop.
      await this.#io?.close();
    })();
    return this.#closing;
  }

  /** The rosbridge link's state, for a bridged body. */
  get bridgeState(): string | undefined {
    return this.#io?.state;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Terminates the loop thread at once, without its orderly shutdown (the watchdog's last
   * resort). The latch is set first, with `reason`; the thread's exit keeps it set.
   */
  async kill(reason: 'watchdog' | 'fault'): Promise<void> {
    this.mailbox.engage(reason);
    if (!this.#exited) await this.#worker.terminate();
  }

  #checkLoop(watchdogMs: number): void {
    const ticks = this.mailbox.readState()?.ticks ?? -1;
    const now = performance.now();
    if (ticks !== this.#lastTicks) {
      this.#lastTicks = ticks;
      this.#lastTickSeenAt = now;
      return;
    }
    if (now - this.#lastTickSeenAt < watchdogMs || this.#exited || this.#closing !== undefined)
      return;
    this.#logger.error(
      { stalledMs: Math.round(now - this.#lastTickSeenAt) },
      'the control loop stalled: e-stop engaged, loop terminated',
    );
    void this.kill('watchdog');
  }

  /** An agent's motion while a human teleoperates is refused (the slot is the human's). */
  #assertNoOverride(): void {
    if (Date.now() < this.mailbox.overrideUntil) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        'a human is driving the robot: AI motion is suspended',
        {
          details: { until: this.mailbox.overrideUntil },
        },
      );
    }
  }

  #assertMayMove(): void {
    if (this.mailbox.engaged) {
      throw new KeelError('KEEL_ESTOP_ENGAGED', undefined, {
        details: { reason: this.mailbox.reason },
      });
    }
    if (this.#exited) throw new KeelError('KEEL_HAL_FAULT', 'the control loop is not running');
  }

  #receive(message: FromLoopMessage): void {
    switch (message.type) {
      case 'sensors':
        for (const listener of this.#sensorListeners) {
          try {
            listener(message);
          } catch (error) {
            this.#logger.warn({ err: error }, 'a sensor listener failed');
          }
        }
        return;
      case 'reply':
        this.#requests.settle(message);
        return;
      case 'trajectory-end': {
        const waiter = this.#trajectoryWaiters.get(message.id);
        this.#trajectoryWaiters.delete(message.id);
        waiter?.(message.outcome);
        return;
      }
      case 'fault':
        this.mailbox.engage('fault');
        this.#logger.error(
          { fault: message.message },
          'the control loop reported a fault: e-stop engaged',
        );
        return;
      default:
        return;
    }
  }
}
