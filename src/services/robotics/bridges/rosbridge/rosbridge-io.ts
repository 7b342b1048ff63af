import { setTimeout as delay } from 'node:timers/promises';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { Logger } from '../../../../platform/observability/logger.ts';
import type { ControlMailbox } from '../../control/control-mailbox.ts';
import { OutboundTwist } from '../../control/outbound-twist.ts';
import type { FromRosbridgeIo, RosbridgeIoWorkerData } from './rosbridge-io-worker.ts';

export interface RosbridgeIoOptions {
  readonly url: string;
  readonly mailbox: ControlMailbox;
  /** How often `/cmd_vel` goes out, Hz (default 20). */
  readonly publishHz?: number;
  /** A twist the loop has not refreshed for this long goes out as zero, ms. */
  readonly commandTimeoutMs: number;
  readonly logLevel: RosbridgeIoWorkerData['logLevel'];
  readonly logger: Logger;
}

/**
 * The brain's handle on a rosbridge I/O thread (see `rosbridge-io-worker.ts`): it hands the
 * control loop the port the robot's odometry and scans arrive on and the shared slot its
 * twists go out through, relays the thread's log lines, and stops it after the loop's last
 * zero twist went out.
 *
 * @example
 * ```ts
 * const io = RosbridgeIo.start({ url: 'ws://127.0.0.1:9090', mailbox, commandTimeoutMs: 500, logLevel: 'info', logger });
 * // give io.loopPort and io.outbound.buffer to the control loop thread
 * await io.close();
 * ```
 */
export class RosbridgeIo {
  readonly outbound: OutboundTwist;
  /** For the control loop thread (transfer it): odometry and scans arrive here. */
  readonly loopPort: MessagePort;
  #state = 'connecting';
  readonly #worker: Worker;
  readonly #publishPeriodMs: number;

  private constructor(
    worker: Worker,
    outbound: OutboundTwist,
    loopPort: MessagePort,
    mainPort: MessagePort,
    options: RosbridgeIoOptions,
  ) {
    this.#worker = worker;
    this.outbound = outbound;
    this.loopPort = loopPort;
    this.#publishPeriodMs = 1000 / (options.publishHz ?? 20);
    mainPort.on('message', (message: FromRosbridgeIo) => {
      if (message.type === 'state') {
        this.#state = message.state;
        options.logger.info({ state: message.state, url: options.url }, 'rosbridge link');
        return;
      }
      relay(options.logger, message.line);
    });
    mainPort.unref();
    worker.on('error', (error) =>
      options.logger.error({ err: error }, 'the rosbridge I/O thread failed'),
    );
  }

  static start(options: RosbridgeIoOptions): RosbridgeIo {
    const outbound = OutboundTwist.create();
    const toLoop = new MessageChannel();
    const toMain = new MessageChannel();
    const workerData: RosbridgeIoWorkerData = {
      url: options.url,
      mailboxBuffer: options.mailbox.buffer,
      outboundBuffer: outbound.buffer,
      loopPort: toLoop.port1,
      mainPort: toMain.port1,
      publishHz: options.publishHz ?? 20,
      commandTimeoutMs: options.commandTimeoutMs,
      logLevel: options.logLevel,
    };
    const worker = new Worker(new URL('./rosbridge-io-worker.ts', import.meta.url), {
      workerData,
      transferList: [toLoop.port1, toMain.port1],
      name: 'keel-rosbridge-io',
    });
    return new RosbridgeIo(worker, outbound, toLoop.port2, toMain.port2, options);
  }

  /** The link's state: connecting, connected, reconnecting or closed. */
  get state(): string {
    return this.#state;
  }

  /** Lets the last (zero) twist go out, then stops the thread. */
  async close(): Promise<void> {
    await delay(2 * this.#publishPeriodMs);
    await this.#worker.terminate();
  }
}

function relay(logger: Logger, line: string): void {
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
    const fields = { bridge: entry };
    const message = entry.msg ?? 'rosbridge';
    if ((entry.level ?? 30) >= 50) logger.error(fields, message);
    else if ((entry.level ?? 30) >= 40) logger.warn(fields, message);
    else logger.debug(fields, message);
  } catch (error) {
    logger.warn({ err: error, line }, 'an unreadable line from the rosbridge I/O thread');
  }
}
