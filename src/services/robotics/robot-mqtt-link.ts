import type { Logger } from '../../platform/observability/logger.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import { MqttRobotBridge } from './bridges/mqtt/mqtt-robot-bridge.ts';
import {
  type RobotIntent,
  RobotIntentSchema,
  robotIntentToSyscall,
} from './intents/robot-intent.ts';
import type { AuditRecorder, RobotService } from './robot-service.ts';

export interface RobotMqttLinkOptions {
  readonly robot: RobotService;
  readonly url: string;
  readonly topicPrefix: string;
  readonly username?: string;
  readonly password?: string;
  readonly telemetryIntervalMs: number;
  /**
   * Runs one intent through the kernel gate as the agent that MQTT commands act for: its
   * grants and the motion safety rules decide, and the gate audits.
   */
  readonly callGate: (
    intent: { kind: string; resource: string; params: JsonObject },
    signal: AbortSignal,
  ) => Promise<JsonValue>;
  /** Audits what the bridge refuses on its own (the gate audits everything it sees). */
  readonly audit: AuditRecorder;
  readonly logger: Logger;
}

/**
 * Connects the node's robot to an MQTT broker: telemetry out (QoS 0) every
 * `telemetryIntervalMs`, the retained last-known state (QoS 1) when it changes, and robot
 * intents in (QoS 1, `{id, issuedAt, command: {action, payload}}`), each run through the
 * kernel gate as the configured agent — never straight to the body.
 *
 * @example
 * ```ts
 * const link = await RobotMqttLink.start({ robot, url: 'mqtt://127.0.0.1:1883', topicPrefix: 'keel/robots/rover-1', telemetryIntervalMs: 500, callGate, logger });
 * await link.close();
 * ```
 */
export class RobotMqttLink implements AsyncDisposable {
  readonly bridge: MqttRobotBridge<RobotIntent>;
  readonly #timer: NodeJS.Timeout;
  #lastState = '';

  private constructor(bridge: MqttRobotBridge<RobotIntent>, options: RobotMqttLinkOptions) {
    this.bridge = bridge;
    this.#timer = setInterval(() => this.#publish(options), options.telemetryIntervalMs);
    this.#timer.unref();
  }

  static async start(options: RobotMqttLinkOptions): Promise<RobotMqttLink> {
    const bridge = new MqttRobotBridge<RobotIntent>({
      url: options.url,
      clientId: `keel-${options.robot.robotId}`,
      topicPrefix: options.topicPrefix,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
      commandSchema: RobotIntentSchema,
      logger: options.logger,
      onRefused: (refusal) => {
        options
          .audit({
            kind: 'robot.mqtt.refuse',
            actor: `mqtt:${options.topicPrefix}`,
            outcome: 'refused',
            data: {
              robotId: options.robot.robotId,
              commandId: refusal.id,
              code: refusal.code,
              reason: refusal.message,
            },
          })
          .catch((error: unknown) =>
            options.logger.error({ err: error }, 'could not audit an MQTT refusal'),
          );
      },
      // A thrown error becomes the command's error result in the bridge (a non-Keel one as
      // KEEL_INTERNAL, logged there).
      onCommand: async (command, meta) => {
        const syscall = robotIntentToSyscall(command);
        const value = await options.callGate(
          { kind: syscall.kind, resource: syscall.resource, params: syscall.params as JsonObject },
          meta.signal,
        );
        return { ok: true, value };
      },
    });
    // Connecting in the background: a broker that is down must not stop the node.
    bridge
      .connect()
      .catch((error: unknown) =>
        options.logger.warn({ err: error }, 'MQTT is not reachable yet; retrying'),
      );
    return new RobotMqttLink(bridge, options);
  }

  #publish(options: RobotMqttLinkOptions): void {
    const status = options.robot.status();
    const body = status.body;
    const telemetry = {
      robotId: status.robotId,
      estop: status.estop.engaged,
      estopReason: status.estop.reason,
      pose: status.pose,
      linear: body?.linear ?? 0,
      angular: body?.angular ?? 0,
      battery: body === undefined || body.battery < 0 ? null : body.battery,
    };
    this.bridge.publishTelemetry(telemetry);
    const state = {
      robotId: status.robotId,
      estop: status.estop.engaged,
      estopReason: status.estop.reason,
      charging: body?.charging === 1,
      battery: body === undefined || body.battery < 0 ? null : Math.round(body.battery * 100) / 100,
    };
    const text = JSON.stringify(state);
    if (text !== this.#lastState) {
      this.#lastState = text;
      this.bridge
        .publishState(state)
        .catch((error: unknown) =>
          options.logger.warn({ err: error }, 'could not publish the robot state'),
        );
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.bridge.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
