import { KeelError } from '../../../platform/errors/keel-error.ts';
import {
  type ArmJoints,
  type Point3,
  solveArmInverseKinematics,
} from './arm-inverse-kinematics.ts';
import { type BodyTwist, DifferentialDrive } from './differential-drive.ts';
import {
  type ArmDriver,
  type DriveBaseDriver,
  HAL_SPECIFICATION_VERSION,
  type HalDriver,
  isActuator,
  type RelayDriver,
} from './hal-drivers.ts';

/**
 * The drivers of one robot, and the one place that calls their `do*` methods: it refuses
 * every actuation while the e-stop latch is set, turns a body twist into wheel speeds
 * (differential drive) and an end-effector target into joint angles (inverse kinematics),
 * and drives every actuator to zero energy on request.
 *
 * @example
 * ```ts
 * const hal = new HalRegistry([base, arm, lamp], () => latch.engaged);
 * hal.drive({ linear: 0.3, angular: 0 }, now);
 * hal.zeroEnergy();
 * ```
 */
export class HalRegistry {
  readonly #drivers = new Map<string, HalDriver>();
  readonly #stopped: () => boolean;
  #driveKinematics: DifferentialDrive | undefined;
  #base: DriveBaseDriver | undefined;

  constructor(drivers: readonly HalDriver[], stopped: () => boolean) {
    this.#stopped = stopped;
    for (const driver of drivers) {
      if (driver.specificationVersion !== HAL_SPECIFICATION_VERSION) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `driver ${driver.id} implements an unknown HAL specification`,
        );
      }
      if (this.#drivers.has(driver.id)) {
        throw new KeelError('KEEL_CONFLICT', `two HAL drivers are named ${driver.id}`);
      }
      this.#drivers.set(driver.id, driver);
    }
  }

  /** The driver of a kind (the first one when there are several, e.g. relays). */
  find<Kind extends HalDriver['kind']>(kind: Kind): Extract<HalDriver, { kind: Kind }> | undefined {
    for (const driver of this.#drivers.values()) {
      if (driver.kind === kind) return driver as Extract<HalDriver, { kind: Kind }>;
    }
    return undefined;
  }

  list(): HalDriver[] {
    return [...this.#drivers.values()];
  }

  drive(twist: BodyTwist, nowMs: number): void {
    // Called every tick: the base is looked up once.
    this.#base ??= this.#require('drive-base', 'base') as DriveBaseDriver;
    const base = this.#base;
    this.#assertMayMove();
    this.#driveKinematics ??= new DifferentialDrive(base.wheelbase);
    // A non-finite speed never reaches a wheel: it becomes a stop.
    const safe =
      Number.isFinite(twist.linear) && Number.isFinite(twist.angular)
        ? twist
        : { linear: 0, angular: 0 };
    base.doCommand(this.#driveKinematics.toWheels(safe, base.maxWheelSpeed), nowMs);
  }

  /** Solves the arm's joints for `target` and commands them; returns the joints. */
  moveEndEffector(target: Point3): ArmJoints {
    const arm = this.#require('arm', 'arm') as ArmDriver;
    this.#assertMayMove();
    const joints = solveArmInverseKinematics(arm.geometry, target);
    arm.doCommandJoints(joints);
    return joints;
  }

  setRelay(relayId: string, state: boolean): void {
    const driver = this.#drivers.get(relayId);
    if (driver?.kind !== 'relay') {
      throw new KeelError('KEEL_NOT_FOUND', `this robot has no relay ${relayId}`, {
        details: {
          relays: this.list()
            .filter((entry) => entry.kind === 'relay')
            .map((entry) => entry.id),
        },
      });
    }
    // Opening a relay removes energy, so it is allowed under the e-stop; closing one is not.
    if (state) this.#assertMayMove();
    (driver as RelayDriver)[state ? 'doSet' : 'doZeroEnergy'](state);
  }

  /**
   * Drives every actuator to zero energy. Runs every driver even when one throws, then
   * reports the first failure as `KEEL_HAL_FAULT`.
   */
  zeroEnergy(): void {
    const failures: unknown[] = [];
    for (const driver of this.#drivers.values()) {
      if (!isActuator(driver)) continue;
      try {
        driver.doZeroEnergy();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) {
      throw new KeelError('KEEL_HAL_FAULT', 'an actuator failed to reach zero energy', {
        cause: failures[0],
        details: { failures: failures.length },
      });
    }
  }

  #assertMayMove(): void {
    if (this.#stopped()) throw new KeelError('KEEL_ESTOP_ENGAGED');
  }

  #require(kind: HalDriver['kind'], what: string): HalDriver {
    const driver = this.find(kind);
    if (driver === undefined) throw new KeelError('KEEL_NOT_FOUND', `this robot has no ${what}`);
    return driver;
  }
}
