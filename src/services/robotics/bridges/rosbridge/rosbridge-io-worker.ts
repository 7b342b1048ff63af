/**
 * The I/O thread of a robot behind rosbridge. The control loop thread blocks between ticks,
 * so the WebSocket lives here, on a thread of its own that the brain cannot stall either:
 *
 * - every `1000 / publishHz` ms it publishes the loop's twist from the shared outbound slot
 *   as `/cmd_vel` — a zero twist while the e-stop latch is set, or when the loop has not
 *   written for `commandTimeoutMs` (the loop is gone). Nothing is queued while the link is
 *   down, so nothing stale is sent after a reconnect;
 * - `/odom` and `/scan` go to the loop thread, which fuses and forwards them to the brain.
 *
 * If this thread or the whole node dies, the twists stop and the robot's own base driver
 * stops the robot by its deadman.
 */

import { Writable } from 'node:stream';
import { type MessagePort, workerData } from 'node:worker_threads';
import { createLogger, type LogLevel } from '../../../../platform/observability/logger.ts';
import { SecretRedactor } from '../../../../platform/observability/secret-redactor.ts';
import { ControlMailbox } from '../../control/control-mailbox.ts';
import { OutboundTwist } from '../../control/outbound-twist.ts';
import type { BridgeInbound } from '../../control/rosbridge-loop-body.ts';
import { yawOf } from '../../geometry/quaternion.ts';
import { RosRobotLink } from './ros-robot-link.ts';
import { RosbridgeClient } from './rosbridge-client.ts';

export interface RosbridgeIoWorkerData {
  readonly url: string;
  readonly mailboxBuffer: SharedArrayBuffer;
  readonly outboundBuffer: SharedArrayBuffer;
  /** To the control loop thread (odometry, scans). */
  readonly loopPort: MessagePort;
  /** To the brain (log lines and link state). */
  readonly mainPort: MessagePort;
  readonly publishHz: number;
  readonly commandTimeoutMs: number;
  readonly logLevel: LogLevel;
}

export type FromRosbridgeIo =
  | { readonly type: 'log'; readonly line: string }
  | { readonly type: 'state'; readonly state: string };

const data = workerData as RosbridgeIoWorkerData;
const mailbox = ControlMailbox.attach(data.mailboxBuffer);
const outbound = OutboundTwist.attach(data.outboundBuffer);
const send = (message: FromRosbridgeIo) => data.mainPort.postMessage(message);
const toLoop = (message: BridgeInbound) => data.loopPort.postMessage(message);

const logger = createLogger({
  level: data.logLevel,
  format: 'json',
  redactor: new SecretRedactor([]),
  destination: new Writable({
    write: (chunk, _encoding, callback) => {
      send({ type: 'log', line: String(chunk) });
      callback();
    },
  }),
  base: { component: 'rosbridge-io' },
});

const client = new RosbridgeClient({ url: data.url, logger });
client.onStateChange((event) => send({ type: 'state', state: event.state }));
client.start();
const link = new RosRobotLink({ client, logger });

link.onOdometry((odometry) => {
  toLoop({
    type: 'odometry',
    reading: {
      stampMs: odometry.stampMs,
      x: odometry.pose.position.x,
      y: odometry.pose.position.y,
      yaw: yawOf(odometry.pose.orientation),
      linear: odometry.twist.linear.x,
      angular: odometry.twist.angular.z,
    },
  });
});

link.onScan((scan) => {
  toLoop({
    type: 'scan',
    scan: {
      frameId: scan.frameId,
      stampMs: scan.stampMs,
      angleMin: scan.angleMin,
      angleIncrement: scan.angleIncrement,
      rangeMin: scan.rangeMin,
      rangeMax: scan.rangeMax,
      ranges: Float32Array.from(scan.ranges),
    },
  });
});

setInterval(
  () => {
    if (client.state !== 'connected') return;
    const twist = outbound.read();
    const stale = twist === undefined || Date.now() - twist.writtenAt > data.commandTimeoutMs;
    const zero = mailbox.engaged || stale;
    try {
      link.publishCmdVel({
        linear: { x: zero ? 0 : (twist?.linear ?? 0), y: 0, z: 0 },
        angular: { x: 0, y: 0, z: zero ? 0 : (twist?.angular ?? 0) },
      });
    } catch (error) {
      // Not connected after all, or the send buffer is full: skip this one, never queue it.
      logger.debug({ err: error }, 'a /cmd_vel was not sent');
    }
  },
  Math.max(5, Math.round(1000 / data.publishHz)),
);
