import type { ArmGeometry, ArmJoints } from '../arm-inverse-kinematics.ts';
import { type ArmDriver, HAL_SPECIFICATION_VERSION, type RelayDriver } from '../hal-drivers.ts';
import { PidController } from '../pid-controller.ts';

/**
 * A simulated three-joint arm: each joint follows its target through a PID controller whose
 * output is the joint speed, clamped to `maxJointSpeed`. At zero energy the joints stop
 * where they are (the simulated brakes hold them).
 *
 * @example
 * ```ts
 * const arm = new SimArm({ shoulderHeight: 0.1, upperLength: 0.3, foreLength: 0.25 }, 1.5);
 * arm.doCommandJoints({ base: 0.5, shoulder: 0.3, elbow: -0.6 });
 * arm.step(0.01);
 * ```
 */
export class SimArm implements ArmDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'arm';
  readonly id: string;
  readonly geometry: ArmGeometry;
  readonly #controllers: Record<keyof ArmJoints, PidController>;
  #joints: ArmJoints = { base: 0, shoulder: 0, elbow: 0 };
  #target: ArmJoints | undefined;

  constructor(geometry: ArmGeometry, maxJointSpeed: number, id = 'arm') {
    this.id = id;
    this.geometry = geometry;
    const controller = () =>
      new PidController({
        proportional: 6,
        integral: 0.5,
        derivative: 0.05,
        outputMin: -maxJointSpeed,
        outputMax: maxJointSpeed,
      });
    this.#controllers = { base: controller(), shoulder: controller(), elbow: controller() };
  }

  doCommandJoints(joints: ArmJoints): void {
    this.#target = joints;
  }

  doZeroEnergy(): void {
    this.#target = undefined;
    for (const controller of Object.values(this.#controllers)) controller.reset();
  }

  readJoints(): ArmJoints {
    return this.#joints;
  }

  step(dtSeconds: number): void {
    const target = this.#target;
    if (target === undefined || !(dtSeconds > 0)) return;
    const advance = (joint: keyof ArmJoints) =>
      this.#joints[joint] +
      this.#controllers[joint].update(target[joint], this.#joints[joint], dtSeconds) * dtSeconds;
    this.#joints = {
      base: advance('base'),
      shoulder: advance('shoulder'),
      elbow: advance('elbow'),
    };
  }
}

/**
 * A simulated relay; open (off) is its zero-energy state.
 *
 * @example
 * ```ts
 * const lamp = new SimRelay('lamp');
 * lamp.doSet(true);
 * ```
 */
export class SimRelay implements RelayDriver {
  readonly specificationVersion = HAL_SPECIFICATION_VERSION;
  readonly kind = 'relay';
  readonly id: string;
  #closed = false;

  constructor(id: string) {
    this.id = id;
  }

  doSet(state: boolean): void {
    this.#closed = state;
  }

  doZeroEnergy(): void {
    this.#closed = false;
  }

  read(): boolean {
    return this.#closed;
  }
}
