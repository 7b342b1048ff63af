/**
 * The shared contract every HAL driver adapter passes (the simulator here; a real device's
 * driver runs the same suite on the bench). A fixture gives the driver and a way to let
 * time pass for it.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArmDriver, DriveBaseDriver, RelayDriver } from './hal-drivers.ts';
import { HAL_SPECIFICATION_VERSION } from './hal-drivers.ts';

export interface DriverFixture<Driver> {
  readonly driver: Driver;
  /** Lets `ms` of device time pass (steps a simulator, waits for hardware). */
  advance(ms: number): void;
  /** The device clock now, ms. */
  now(): number;
}

export function driveBaseContract(
  name: string,
  create: () => DriverFixture<DriveBaseDriver>,
): void {
  describe(`drive base contract: ${name}`, () => {
    it('implements hal-v1', () => {
      assert.equal(create().driver.specificationVersion, HAL_SPECIFICATION_VERSION);
    });

    it('reaches a commanded wheel speed and reports it', () => {
      const fixture = create();
      for (let step = 0; step < 20; step += 1) {
        fixture.driver.doCommand({ left: 0.2, right: 0.2 }, fixture.now());
        fixture.advance(50);
      }
      const wheels = fixture.driver.readWheels();
      assert.ok(Math.abs(wheels.left - 0.2) < 0.02 && Math.abs(wheels.right - 0.2) < 0.02);
    });

    it('stops at zero energy', () => {
      const fixture = create();
      for (let step = 0; step < 20; step += 1) {
        fixture.driver.doCommand({ left: 0.3, right: -0.3 }, fixture.now());
        fixture.advance(50);
      }
      fixture.driver.doZeroEnergy();
      fixture.advance(1000);
      assert.deepEqual(fixture.driver.readWheels(), { left: 0, right: 0 });
    });

    it('stops by itself when its command is not refreshed (deadman)', () => {
      const fixture = create();
      for (let step = 0; step < 20; step += 1) {
        fixture.driver.doCommand({ left: 0.3, right: 0.3 }, fixture.now());
        fixture.advance(50);
      }
      fixture.advance(3000);
      assert.deepEqual(fixture.driver.readWheels(), { left: 0, right: 0 });
    });

    it('never exceeds its top wheel speed', () => {
      const fixture = create();
      for (let step = 0; step < 40; step += 1) {
        fixture.driver.doCommand({ left: 100, right: -100 }, fixture.now());
        fixture.advance(50);
      }
      const wheels = fixture.driver.readWheels();
      assert.ok(Math.abs(wheels.left) <= fixture.driver.maxWheelSpeed + 1e-9);
      assert.ok(Math.abs(wheels.right) <= fixture.driver.maxWheelSpeed + 1e-9);
    });
  });
}

export function armContract(name: string, create: () => DriverFixture<ArmDriver>): void {
  describe(`arm contract: ${name}`, () => {
    it('moves its joints to a commanded position', () => {
      const fixture = create();
      fixture.driver.doCommandJoints({ base: 0.4, shoulder: 0.3, elbow: -0.5 });
      fixture.advance(5000);
      const joints = fixture.driver.readJoints();
      assert.ok(Math.abs(joints.base - 0.4) < 0.01);
      assert.ok(Math.abs(joints.shoulder - 0.3) < 0.01);
      assert.ok(Math.abs(joints.elbow + 0.5) < 0.01);
    });

    it('holds where it is at zero energy instead of finishing the move', () => {
      const fixture = create();
      fixture.driver.doCommandJoints({ base: 1.5, shoulder: 0, elbow: 0 });
      fixture.advance(200);
      fixture.driver.doZeroEnergy();
      const held = fixture.driver.readJoints().base;
      fixture.advance(2000);
      assert.equal(fixture.driver.readJoints().base, held);
      assert.ok(held < 1.4);
    });
  });
}

export function relayContract(name: string, create: () => DriverFixture<RelayDriver>): void {
  describe(`relay contract: ${name}`, () => {
    it('closes and opens, and zero energy opens it', () => {
      const { driver } = create();
      assert.equal(driver.read(), false);
      driver.doSet(true);
      assert.equal(driver.read(), true);
      driver.doZeroEnergy();
      assert.equal(driver.read(), false);
    });
  });
}
