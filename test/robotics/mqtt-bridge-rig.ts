import { randomUUID } from 'node:crypto';
import { type AddressInfo, createServer, connect as openSocket, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { connectAsync, type MqttClient } from 'mqtt';
import { z } from 'zod';
import type { CommandHandler } from '../../src/services/robotics/bridges/mqtt/command-handler.ts';
import {
  type MqttBridgeState,
  MqttRobotBridge,
} from '../../src/services/robotics/bridges/mqtt/mqtt-robot-bridge.ts';
import type { MqttRobotBridgeOptions } from '../../src/services/robotics/bridges/mqtt/mqtt-robot-bridge-options.ts';
import { silentLogger } from '../support/silent-logger.ts';

// What the MQTT bridge tests share: the real broker, an observing client, a proxy to cut.

export const BROKER_HOST = '127.0.0.1';
export const BROKER_PORT = 1883;
export const BROKER_URL = `mqtt://${BROKER_HOST}:${BROKER_PORT}`;
export const WAIT_MS = 10_000;

export const CommandSchema = z.object({
  action: z.enum(['move', 'stop']),
  payload: z.object({ speed: z.number().min(0).max(1) }).strict(),
});
export type Command = z.output<typeof CommandSchema>;

interface Received {
  readonly topic: string;
  readonly text: string;
  readonly retain: boolean;
}

/** Fails with a clear message when the broker these tests need is not there. */
export function requireBroker(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = openSocket(BROKER_PORT, BROKER_HOST);
    const fail = (reason: string) => {
      socket.destroy();
      reject(
        new Error(
          `Mosquitto is not running on ${BROKER_HOST}:${BROKER_PORT} (${reason}); these tests need the real broker: start it (e.g. \`mosquitto -d\`) and run them again`,
        ),
      );
    };
    socket.setTimeout(3_000, () => fail('no answer within 3 s'));
    socket.once('error', (error) => fail(error.message));
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
  });
}

/** Waits (bounded) until `probe` finds something, probing again whenever `subscribe` pokes. */
export function until<T>(
  what: string,
  probe: () => T | undefined,
  subscribe: (poke: () => void) => () => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let stop: (() => void) | undefined;
    const timer = setTimeout(() => {
      stop?.();
      reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`));
    }, WAIT_MS);
    const poke = () => {
      const found = probe();
      if (found === undefined) return;
      clearTimeout(timer);
      stop?.();
      resolve(found);
    };
    stop = subscribe(poke);
    poke();
  });
}

/** A plain MQTT client playing the other side: it records everything it receives. */
export class Observer {
  readonly received: Received[] = [];
  readonly #client: MqttClient;

  private constructor(client: MqttClient) {
    this.#client = client;
    client.on('message', (topic, payload, packet) => {
      this.received.push({ topic, text: payload.toString(), retain: packet.retain });
    });
  }

  static async connect(...topics: string[]): Promise<Observer> {
    const client = await connectAsync(BROKER_URL, {
      clientId: `keel-test-${randomUUID()}`,
      reconnectPeriod: 0,
    });
    const observer = new Observer(client);
    if (topics.length > 0) await client.subscribeAsync(topics, { qos: 1 });
    return observer;
  }

  async publish(topic: string, payload: string | Buffer, retain = false): Promise<void> {
    await this.#client.publishAsync(topic, payload, { qos: 1, retain });
  }

  /** The first received message on `topic` whose JSON satisfies `predicate`. */
  next(topic: string, predicate: (value: Record<string, unknown>) => boolean, what: string) {
    return until(
      what,
      () => this.messages(topic).find(({ value }) => predicate(value)),
      (poke) => {
        this.#client.on('message', poke);
        return () => this.#client.off('message', poke);
      },
    );
  }

  messages(topic: string): { value: Record<string, unknown>; retain: boolean }[] {
    return this.received
      .filter((message) => message.topic === topic && message.text !== '')
      .map((message) => ({ value: JSON.parse(message.text), retain: message.retain }));
  }

  close(): Promise<void> {
    return this.#client.endAsync();
  }
}

/** A loopback TCP proxy in front of the broker, so a test can cut the bridge's connection. */
export class LoopbackProxy {
  readonly #server = createServer((socket) => this.#accept(socket));
  readonly #sockets = new Set<Socket>();
  #accepting = true;

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `mqtt://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Refuses (closes) new connections until `unblock()`. */
  block(): void {
    this.#accepting = false;
  }

  unblock(): void {
    this.#accepting = true;
  }

  /** Destroys every proxied connection, as a network failure would; returns how many. */
  cut(): number {
    const count = this.#sockets.size;
    for (const socket of this.#sockets) socket.destroy();
    return count;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve, reject) =>
      this.#server.close((error) => (error ? reject(error) : resolve())),
    );
  }

  #accept(client: Socket): void {
    if (!this.#accepting) {
      client.destroy();
      return;
    }
    const upstream = openSocket(BROKER_PORT, BROKER_HOST);
    const both = [client, upstream];
    for (const socket of both) {
      this.#sockets.add(socket);
      // A reset on one side ends the pair; that is the failure this proxy exists to make.
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        this.#sockets.delete(socket);
        for (const other of both) other.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

export interface Rig {
  readonly bridge: MqttRobotBridge<Command>;
  readonly observer: Observer;
  readonly calls: { command: Command; id: string }[];
  readonly topics: {
    commands: string;
    results: string;
    state: string;
    status: string;
    telemetry: string;
  };
  send(envelope: unknown, retain?: boolean): Promise<void>;
  result(id: string | null, code?: string): Promise<Record<string, unknown>>;
}

export async function createRig(
  t: TestContext,
  overrides: Partial<MqttRobotBridgeOptions<Command>> & { readonly connectNow?: boolean } = {},
): Promise<Rig> {
  const prefix = `keel-test/robots/${randomUUID()}`;
  const topics = {
    commands: `${prefix}/commands`,
    results: `${prefix}/command-results`,
    state: `${prefix}/state`,
    status: `${prefix}/status`,
    telemetry: `${prefix}/telemetry`,
  };
  const calls: Rig['calls'] = [];
  const onCommand: CommandHandler<Command> = async (command, meta) => {
    calls.push({ command, id: meta.id });
    return { ok: true, value: { done: command.action } };
  };
  const { connectNow = true, ...options } = overrides;
  const bridge = new MqttRobotBridge<Command>({
    url: BROKER_URL,
    clientId: `keel-bridge-${randomUUID()}`,
    topicPrefix: prefix,
    commandSchema: CommandSchema,
    onCommand,
    logger: silentLogger(),
    reconnectPeriodMs: 100,
    ...options,
  });
  const observer = await Observer.connect(topics.results, topics.status);
  t.after(async () => {
    await bridge.close();
    // Leave no retained messages behind on the shared broker.
    await observer.publish(topics.state, '', true);
    await observer.publish(topics.status, '', true);
    await observer.publish(topics.commands, '', true);
    await observer.close();
  });
  if (connectNow) await bridge.connect({ signal: AbortSignal.timeout(WAIT_MS) });
  return {
    bridge,
    observer,
    calls,
    topics,
    send: (envelope, retain = false) =>
      observer.publish(
        topics.commands,
        typeof envelope === 'string' ? envelope : JSON.stringify(envelope),
        retain,
      ),
    result: async (id, code) => {
      const { value } = await observer.next(
        topics.results,
        (value) =>
          value.id === id &&
          (code === undefined || (value.error as { code?: string } | undefined)?.code === code),
        `a result for ${id}${code === undefined ? '' : ` with ${code}`}`,
      );
      return value;
    },
  };
}

export const command = (id: string, action: 'move' | 'stop' = 'move', issuedAt = Date.now()) => ({
  id,
  issuedAt,
  command: { action, payload: { speed: 0.5 } },
});

export function stateReached(
  bridge: MqttRobotBridge<Command>,
  state: MqttBridgeState,
): Promise<true> {
  return until(
    `the bridge to be ${state}`,
    () => (bridge.state === state ? true : undefined),
    (poke) => bridge.onStateChange(poke),
  );
}
