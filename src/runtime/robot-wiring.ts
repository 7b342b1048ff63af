/**
 * The robot's part of the composition root: the body and its safety rules when `[robotics]`
 * is enabled, and its MQTT link when `[robotics.mqtt]` is set.
 */

import type { LoadedConfiguration } from '../kernel/config/load-configuration.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { EventBus } from '../platform/bus/event-bus.ts';
import type { Clock } from '../platform/clock/clock.ts';
import type { Logger } from '../platform/observability/logger.ts';
import type { KeyValueStore } from '../platform/storage/ports/key-value-store.ts';
import { RobotMqttLink } from '../services/robotics/robot-mqtt-link.ts';
import { RobotService } from '../services/robotics/robot-service.ts';
import type { AgentRuntime } from './agent-runtime.ts';

/**
 * Starts the node's robot, registers its motion safety rules with the kernel's verifier and
 * makes every `hitl` call ask a human; `undefined` when `[robotics]` is off. Its executors are
 * the caller's to register.
 *
 * @example
 * ```ts
 * const robot = await startRobot({ loaded, kernel, bus, keyValues, clock, logger });
 * ```
 */
export async function startRobot(parts: {
  readonly loaded: LoadedConfiguration;
  readonly kernel: Kernel;
  readonly bus: EventBus;
  readonly keyValues: KeyValueStore;
  readonly clock: Clock;
  readonly logger: Logger;
}): Promise<RobotService | undefined> {
  const configuration = parts.loaded.configuration.robotics;
  if (!configuration.enabled) return undefined;
  const robot = await RobotService.start({
    configuration,
    bus: parts.bus,
    keyValues: parts.keyValues,
    audit: (entry) => parts.kernel.audit.record(entry),
    logger: parts.logger.child({ component: 'robotics' }),
    now: () => parts.clock.now(),
  });
  for (const rule of robot.rules) parts.kernel.verifier.register(rule);
  // AskHuman: every question goes to the approvals inbox; the answer is the approval's edit.
  parts.kernel.approvalPolicy.addSource(
    'hitl',
    () => 'the agent asks a human; answer with `keel approvals approve <id> --set answer=…`',
  );
  return robot;
}

/**
 * Connects the robot to MQTT when `[robotics.mqtt]` is set: commands act as the configured
 * agent, so its grants, the motion rules and the audit apply.
 *
 * @example
 * ```ts
 * const link = await connectRobotMqtt({ robot, loaded, kernel, runtime, logger });
 * ```
 */
export async function connectRobotMqtt(parts: {
  readonly robot: RobotService | undefined;
  readonly loaded: LoadedConfiguration;
  readonly kernel: Kernel;
  readonly runtime: AgentRuntime;
  readonly logger: Logger;
}): Promise<RobotMqttLink | undefined> {
  const mqtt = parts.loaded.configuration.robotics.mqtt;
  if (parts.robot === undefined || mqtt === undefined) return undefined;
  return RobotMqttLink.start({
    robot: parts.robot,
    url: mqtt.url,
    topicPrefix: mqtt.topicPrefix,
    ...(mqtt.username === undefined ? {} : { username: mqtt.username }),
    ...(mqtt.passwordSecret === undefined
      ? {}
      : { password: parts.loaded.secrets.require(mqtt.passwordSecret).reveal() }),
    telemetryIntervalMs: mqtt.telemetryIntervalMs,
    audit: (entry) => parts.kernel.audit.record(entry),
    callGate: async (intent, signal) => {
      const agent = (await parts.runtime.show(mqtt.agent)).agent;
      return parts.kernel.gate.call({ agentId: agent.id }, intent, { signal });
    },
    logger: parts.logger.child({ component: 'robot-mqtt' }),
  });
}

/** The robot is ready while its control loop runs; an engaged e-stop is reported, not a fault. */
export function robotHealth(robot: RobotService): {
  readonly name: string;
  readonly ready: boolean;
  readonly detail: string;
} {
  const status = robot.status();
  const running = robot.body.running;
  const estop = status.estop.engaged
    ? `e-stop ENGAGED (${status.estop.reason})`
    : 'e-stop released';
  return {
    name: 'robot',
    ready: running,
    detail: running
      ? `${status.robotId}: ${estop}; loop ${status.rateHz} Hz, ${status.scheduling}${status.bridge === undefined ? '' : `; rosbridge ${status.bridge}`}`
      : `${status.robotId}: the control loop is not running (${estop})`,
  };
}
