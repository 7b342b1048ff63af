import type { RoboticsConfiguration } from '../../kernel/config/robotics-configuration.ts';
import type { SyscallExecutor } from '../../kernel/gate/syscall.ts';
import type { VerifierRule } from '../../kernel/verifier/verifier-rule.ts';
import type { EventBus } from '../../platform/bus/event-bus.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { KeyValueStore } from '../../platform/storage/ports/key-value-store.ts';
import type { BodyState, EstopReason } from './control/control-mailbox.ts';
import { RobotBody, type RobotBodySpecification } from './control/robot-body.ts';
import { DEMO_YARD } from './demo-yard.ts';
import { FleetTaskBoard } from './fleet/fleet-task-board.ts';
import type { SimRobotOptions } from './hal/sim/sim-robot.ts';
import { loadSimWorld, SimWorld } from './hal/sim/sim-world.ts';
import { POSE_MAX_AGE_MS, perceptionNow, RobotPerception } from './perception/robot-perception.ts';
import { robotExecutors } from './robot-executors.ts';
import { motionSafetyRules } from './safety/motion-safety-rules.ts';

/** Records a security decision (the kernel's audit log, injected). */
export type AuditRecorder = (entry: {
  readonly kind: string;
  readonly actor: string;
  readonly outcome: string;
  readonly data: Readonly<Record<string, unknown>>;
}) => Promise<unknown>;

export interface RobotServiceOptions {
  readonly configuration: RoboticsConfiguration;
  readonly bus: EventBus;
  readonly keyValues: KeyValueStore;
  readonly audit: AuditRecorder;
  readonly logger: Logger;
  readonly now: () => number;
  /** A world to use instead of the configured file (tests). */
  readonly world?: unknown;
}

/** What `keel robot status` shows. */
export interface RobotStatus {
  readonly robotId: string;
  readonly estop: { readonly engaged: boolean; readonly reason: EstopReason };
  readonly body: BodyState | undefined;
  readonly pose: { readonly x: number; readonly y: number; readonly yaw: number } | null;
  readonly scheduling: string;
  /** A bridged body's link (connecting, connected, reconnecting, closed); absent for the sim. */
  readonly bridge?: string;
  readonly rateHz: number;
  readonly manualOverrideUntil: number;
  /** Only with `status({ map: true })`: counting the map's voxels walks all of them. */
  readonly map?: { readonly scans: number; readonly rejected: number; readonly voxels: number };
}

/**
 * The robot of this node: its body (control loop thread and e-stop latch), its perception,
 * the motion safety rules for the kernel's verifier, the `hal.*`, `hitl` and `fleet.*`
 * executors, and the operator's controls — e-stop, release and teleoperation — each audited.
 *
 * @example
 * ```ts
 * const robot = await RobotService.start({ configuration, bus, keyValues, audit, logger, now });
 * for (const rule of robot.rules) kernel.verifier.register(rule);
 * await robot.engage('operator', 'operator:ana');
 * ```
 */
export class RobotService implements AsyncDisposable {
  readonly robotId: string;
  readonly body: RobotBody;
  readonly perception: RobotPerception;
  readonly rules: readonly VerifierRule[];
  readonly executors: readonly SyscallExecutor[];
  readonly #options: RobotServiceOptions;
  readonly #unsubscribe: () => void;

  private constructor(options: RobotServiceOptions, body: RobotBody, perception: RobotPerception) {
    this.#options = options;
    this.robotId = options.configuration.robotId;
    this.body = body;
    this.perception = perception;
    this.#unsubscribe = body.onSensors((sweep) => perception.ingest(sweep));
    this.rules = motionSafetyRules(options.configuration.safety, {
      estop: () => ({ engaged: body.engaged, reason: body.estopReason }),
      // The rules judge only a pose the sensors confirmed within the last second.
      motion: () => perception.freshEstimate(perceptionNow(), POSE_MAX_AGE_MS),
      map: () => perception.map(),
      manualOverrideUntil: () => body.mailbox.overrideUntil,
    });
    this.executors = robotExecutors({
      robotId: this.robotId,
      body,
      perception,
      board: new FleetTaskBoard(options.keyValues),
      bus: options.bus,
      now: options.now,
    });
  }

  static async start(options: RobotServiceOptions): Promise<RobotService> {
    const { configuration } = options;
    let specification: RobotBodySpecification;
    if (configuration.body.type === 'rosbridge') {
      specification = { ...configuration.body, logLevel: configuration.bridgeLogLevel };
    } else {
      const world =
        options.world !== undefined
          ? new SimWorld(options.world)
          : configuration.worldFile === undefined
            ? new SimWorld(DEMO_YARD)
            : await loadSimWorld(configuration.worldFile);
      const robot = (world.description.robot ?? {}) as SimRobotOptions;
      specification = { type: 'sim', world: world.description, robot };
    }
    const body = await RobotBody.start({
      body: specification,
      rateHz: configuration.rateHz,
      commandTimeoutMs: configuration.commandTimeoutMs,
      maxLinear: configuration.safety.maxLinear,
      maxAngular: configuration.safety.maxAngular,
      realtimePriority:
        configuration.realtimePriority === 0 ? false : configuration.realtimePriority,
      logger: options.logger.child({ component: 'robot-body' }),
    });
    const perception = new RobotPerception(options.logger.child({ component: 'perception' }));
    options.logger.info(
      { robotId: configuration.robotId, rateHz: body.rateHz, scheduling: body.scheduling.detail },
      'robot body started',
    );
    return new RobotService(options, body, perception);
  }

  /** Sets the e-stop latch (audited); returns whether it was already set. */
  async engage(reason: Exclude<EstopReason, 'none'>, actor: string): Promise<boolean> {
    const already = this.body.engage(reason);
    await this.#options.audit({
      kind: 'robot.estop',
      actor,
      outcome: already ? 'already-engaged' : 'engaged',
      data: { robotId: this.robotId, reason },
    });
    return already;
  }

  /**
   * Releases the e-stop: an explicit operator action, audited. The body stays still until a
   * new command arrives; nothing from before the stop is resumed.
   */
  async release(actor: string, note?: string): Promise<boolean> {
    const wasEngaged = this.body.engaged;
    const reason = this.body.estopReason;
    try {
      this.body.release();
    } catch (error) {
      await this.#options.audit({
        kind: 'robot.estop.release',
        actor,
        outcome: 'refused',
        data: { robotId: this.robotId, reason, error: (error as Error).message },
      });
      throw error;
    }
    await this.#options.audit({
      kind: 'robot.estop.release',
      actor,
      outcome: wasEngaged ? 'released' : 'not-engaged',
      data: { robotId: this.robotId, reason, note: note ?? null },
    });
    return wasEngaged;
  }

  /**
   * A human drives the robot directly (teleoperation): the command goes to the body without
   * the agent gate, and AI motion is suspended for the manual-override window from now.
   */
  async teleop(linear: number, angular: number, actor: string): Promise<void> {
    if (!Number.isFinite(linear) || !Number.isFinite(angular)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', 'teleop speeds must be finite numbers');
    }
    const safety = this.#options.configuration.safety;
    if (Math.abs(linear) > safety.maxLinear || Math.abs(angular) > safety.maxAngular) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        `teleop is capped at ${safety.maxLinear} m/s and ${safety.maxAngular} rad/s too`,
      );
    }
    const until = this.#options.now() + safety.manualOverrideMs;
    const first = this.body.mailbox.overrideUntil < this.#options.now();
    this.body.teleop(linear, angular, until);
    if (first) {
      await this.#options.audit({
        kind: 'robot.teleop',
        actor,
        outcome: 'override',
        data: { robotId: this.robotId, until },
      });
    }
  }

  /**
   * The robot's state for people and telemetry; `map: true` adds the map's statistics, which
   * walk every voxel, so periodic callers (telemetry, health) leave it out.
   */
  status(options: { readonly map?: boolean } = {}): RobotStatus {
    const estimate = this.perception.estimate();
    return {
      robotId: this.robotId,
      estop: { engaged: this.body.engaged, reason: this.body.estopReason },
      body: this.body.state(),
      pose: estimate === undefined ? null : { x: estimate.x, y: estimate.y, yaw: estimate.yaw },
      scheduling: this.body.scheduling.detail,
      ...(this.body.bridgeState === undefined ? {} : { bridge: this.body.bridgeState }),
      rateHz: this.body.rateHz,
      manualOverrideUntil: this.body.mailbox.overrideUntil,
      ...(options.map === true ? { map: this.perception.statistics } : {}),
    };
  }

  /** Stops the body: every actuator to zero energy, then the loop thread exits. */
  async close(): Promise<void> {
    this.#unsubscribe();
    await this.body.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
