import { connect, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { systemClock } from '../../../../platform/clock/clock.ts';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../../platform/observability/logger.ts';
import type { JsonValue } from '../../../../platform/storage/ports/json-value.ts';
import { CommandIntake } from './command-intake.ts';
import {
  type MqttRobotBridgeOptions,
  type MqttRobotBridgeSettings,
  resolveMqttRobotBridgeSettings,
} from './mqtt-robot-bridge-options.ts';
import { NewestStateSender } from './newest-state-sender.ts';

/**
 * Where the bridge is: `idle` before `connect()`, `connecting` until the first session is
 * subscribed, `online`, `offline` while it reconnects, `closed` after `close()`.
 */
export type MqttBridgeState = 'idle' | 'connecting' | 'online' | 'offline' | 'closed';

/** Counters since the bridge was built. */
export interface MqttRobotBridgeStatistics {
  readonly telemetryPublished: number;
  readonly telemetryDropped: number;
  readonly commandsHandled: number;
  readonly commandsRefused: number;
  readonly duplicateCommands: number;
  readonly connections: number;
  /** The last connection error the MQTT client reported, until the bridge is online again. */
  readonly lastError: string | undefined;
}

const ONLINE = Buffer.from(JSON.stringify({ status: 'online' }));
const CONNECTION_LOST = Buffer.from(
  JSON.stringify({ status: 'offline', reason: 'connection-lost' }),
);
const CLOSED = Buffer.from(JSON.stringify({ status: 'offline', reason: 'closed' }));

/** Resolves `true` when `promise` settles, `false` when `deadline` aborts first. */
function settlesBefore(promise: Promise<unknown>, deadline: AbortSignal): Promise<boolean> {
  if (deadline.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onDeadline = () => resolve(false);
    deadline.addEventListener('abort', onDeadline, { once: true });
    void Promise.allSettled([promise]).then(() => {
      deadline.removeEventListener('abort', onDeadline);
      resolve(true);
    });
  });
}

/**
 * Connects one robot to an MQTT broker. Telemetry goes out on `<prefix>/telemetry` (QoS 0,
 * dropped while offline), the last-known state on `<prefix>/state` (QoS 1, retained; while
 * offline only the newest is kept and sent on reconnect), and `<prefix>/status` says
 * `online` or `offline` (retained; the Last Will covers a crash). Commands arrive on
 * `<prefix>/commands` as `{ id, issuedAt, command }`; each is checked for size, JSON, shape,
 * age and schema, deduplicated by id, handed to `onCommand` one at a time in arrival order, and
 * answered on `<prefix>/command-results` with `{ id, ok, value | error }`.
 *
 * The session is clean: the broker keeps no queue of commands for an absent bridge, and a
 * command that waited anyway is refused as stale.
 *
 * @example
 * ```ts
 * const bridge = new MqttRobotBridge({
 *   url: 'mqtt://127.0.0.1:1883',
 *   clientId: 'keel-arm-1',
 *   topicPrefix: 'keel/robots/arm-1',
 *   commandSchema: RobotIntentSchema,
 *   onCommand: async (intent, meta) => ({ ok: true, value: await actOn(intent, meta.signal) }),
 *   logger,
 * });
 * await bridge.connect({ signal: AbortSignal.timeout(10_000) });
 * await bridge.publishState({ mode: 'idle' });
 * bridge.publishTelemetry({ battery: 0.82 });
 * await bridge.close();
 * ```
 */
export class MqttRobotBridge<Command> {
  readonly #settings: MqttRobotBridgeSettings;
  readonly #ca: string | Buffer | undefined;
  readonly #logger: Logger;
  readonly #stop = new AbortController();
  readonly #commands: CommandIntake<Command>;
  readonly #states: NewestStateSender;
  readonly #listeners = new Set<(state: MqttBridgeState) => void>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #counters = { telemetryPublished: 0, telemetryDropped: 0, connections: 0 };
  #client: MqttClient | undefined;
  #state: MqttBridgeState = 'idle';
  /** Grows on every connect and close, so work begun for an earlier connection can tell. */
  #generation = 0;
  #closing: Promise<void> | undefined;
  #lastError: string | undefined;

  constructor(options: MqttRobotBridgeOptions<Command>) {
    const settings = resolveMqttRobotBridgeSettings(options);
    this.#settings = settings;
    this.#ca = options.ca;
    this.#logger = options.logger.child({
      component: 'mqtt-robot-bridge',
      topicPrefix: settings.topicPrefix,
    });
    this.#commands = new CommandIntake({
      limits: settings,
      commandSchema: options.commandSchema,
      onCommand: options.onCommand,
      clock: options.clock ?? systemClock,
      logger: this.#logger,
      signal: this.#stop.signal,
      ...(options.onRefused === undefined ? {} : { onRefused: options.onRefused }),
      sendResult: (result) =>
        this.#track(
          this.#publish(settings.topics.commandResults, result, { qos: 1 }),
          'a command result',
        ),
    });
    this.#states = new NewestStateSender(
      (payload) => {
        const sent = this.#publish(settings.topics.state, payload, { qos: 1, retain: true });
        this.#track(sent, 'the state');
        return sent;
      },
      () => this.#state === 'online',
    );
  }

  get state(): MqttBridgeState {
    return this.#state;
  }

  statistics(): MqttRobotBridgeStatistics {
    return { ...this.#counters, ...this.#commands.statistics(), lastError: this.#lastError };
  }

  /** Calls `listener` on every change of state; returns the function that stops it. */
  onStateChange(listener: (state: MqttBridgeState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Starts the MQTT client (once) and waits until the bridge is online: connected, subscribed
   * to its commands and `online` published. When `signal` aborts first it rejects with
   * `KEEL_BRIDGE_UNAVAILABLE`, and the client goes on reconnecting until `close()`.
   */
  connect(options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    if (this.#stop.signal.aborted) {
      return Promise.reject(new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the MQTT bridge is closed'));
    }
    this.#client ??= this.#start();
    return this.#untilOnline(options.signal);
  }

  /**
   * Sends one telemetry sample (QoS 0, not retained). Returns `false` when it was dropped
   * because the bridge is not online; samples are never queued. Throws
   * `KEEL_PAYLOAD_TOO_LARGE` above the payload limit.
   */
  publishTelemetry(value: JsonValue): boolean {
    const payload = this.#encode(value, 'telemetry');
    const client = this.#client;
    if (this.#state !== 'online' || client === undefined || !client.connected) {
      this.#counters.telemetryDropped += 1;
      return false;
    }
    this.#track(this.#publish(this.#settings.topics.telemetry, payload, { qos: 0 }), 'telemetry');
    this.#counters.telemetryPublished += 1;
    return true;
  }

  /**
   * Sets the robot's last-known state (QoS 1, retained, so late subscribers get it). Resolves
   * when the broker has it — or a newer state that replaced it before it was sent: while
   * offline only the newest state is kept, and it is sent on reconnect. Rejects with
   * `KEEL_BRIDGE_UNAVAILABLE` if the bridge closes first.
   */
  publishState(value: JsonValue): Promise<void> {
    if (this.#stop.signal.aborted) {
      return Promise.reject(new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the MQTT bridge is closed'));
    }
    let payload: Buffer;
    try {
      payload = this.#encode(value, 'state');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#states.offer(payload);
  }

  /**
   * Ends cleanly: refuses new commands, aborts the handler's signal and waits for it, publishes
   * the retained `offline` status, then disconnects (so the broker does not fire the Will).
   * Waits at most `closeTimeoutMs` for the handler and the last publishes. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #start(): MqttClient {
    const settings = this.#settings;
    const client = connect(settings.url, {
      clientId: settings.clientId,
      protocolVersion: 4,
      clean: true,
      keepalive: settings.keepaliveSeconds,
      reconnectPeriod: settings.reconnectPeriodMs,
      connectTimeout: settings.connectTimeoutMs,
      // The bridge subscribes itself on every connect, so it knows when that has succeeded.
      resubscribe: false,
      queueQoSZero: false,
      rejectUnauthorized: true,
      ...(settings.username === undefined ? {} : { username: settings.username }),
      ...(settings.password === undefined ? {} : { password: settings.password }),
      ...(this.#ca === undefined ? {} : { ca: this.#ca }),
      will: { topic: settings.topics.status, payload: CONNECTION_LOST, qos: 1, retain: true },
    });
    client.on('connect', () => this.#onConnect(client));
    client.on('close', () => this.#onClose());
    client.on('error', (error) => this.#onError(error));
    client.on('message', (topic, payload, packet) => {
      if (topic === settings.topics.commands) this.#commands.receive(payload, packet.retain);
    });
    this.#setState('connecting');
    this.#logger.info({ url: settings.url, clientId: settings.clientId }, 'MQTT bridge connecting');
    return client;
  }

  #onConnect(client: MqttClient): void {
    this.#generation += 1;
    this.#counters.connections += 1;
    void this.#establish(client, this.#generation);
  }

  async #establish(client: MqttClient, generation: number): Promise<void> {
    const { topics } = this.#settings;
    try {
      const grants = await client.subscribeAsync(topics.commands, { qos: 1 });
      if (grants.some((grant) => grant.qos === 128)) {
        throw new KeelError(
          'KEEL_BRIDGE_UNAVAILABLE',
          `the broker refused the subscription to ${topics.commands}`,
          { details: { topic: topics.commands } },
        );
      }
      await this.#publish(topics.status, ONLINE, { qos: 1, retain: true });
      if (generation !== this.#generation || !client.connected || this.#stop.signal.aborted) return;
      this.#lastError = undefined;
      this.#setState('online');
      this.#logger.info('MQTT bridge online');
      this.#states.flush();
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#lastError = error instanceof Error ? error.message : String(error);
      this.#logger.error({ error }, 'MQTT bridge could not set up its session');
    }
  }

  #onClose(): void {
    this.#generation += 1;
    if (this.#stop.signal.aborted || this.#state === 'offline') return;
    if (this.#state === 'online') this.#logger.warn('MQTT bridge lost its connection');
    this.#setState('offline');
  }

  #onError(error: Error): void {
    if (error.message !== this.#lastError) {
      this.#logger.warn({ error }, 'MQTT bridge connection error');
    }
    this.#lastError = error.message;
  }

  #encode(value: JsonValue, what: string): Buffer {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `the ${what} is not JSON`, { cause: error });
    }
    if (text === undefined) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `the ${what} is not JSON`);
    }
    const payload = Buffer.from(text);
    if (payload.byteLength > this.#settings.maxPayloadBytes) {
      throw new KeelError(
        'KEEL_PAYLOAD_TOO_LARGE',
        `the ${what} is ${payload.byteLength} bytes; the limit is ${this.#settings.maxPayloadBytes}`,
        { details: { bytes: payload.byteLength, maxBytes: this.#settings.maxPayloadBytes } },
      );
    }
    return payload;
  }

  #publish(topic: string, payload: Buffer, options: IClientPublishOptions): Promise<void> {
    const client = this.#client;
    if (client === undefined) {
      return Promise.reject(
        new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the MQTT bridge is not started'),
      );
    }
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, options, (error) => {
        if (error === undefined || error === null) return resolve();
        const message = `publishing to ${topic} failed: ${error.message}`;
        reject(new KeelError('KEEL_BRIDGE_UNAVAILABLE', message, { cause: error }));
      });
    });
  }

  /** Keeps a publish in view until it settles, so `close()` can wait for it; logs a failure. */
  #track(publish: Promise<void>, what: string): void {
    const tracked = publish.then(
      () => undefined,
      (error: unknown) => {
        this.#logger.warn({ error }, `MQTT bridge could not publish ${what}`);
      },
    );
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }

  #untilOnline(signal: AbortSignal | undefined): Promise<void> {
    if (this.#state === 'online') return Promise.resolve();
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error?: KeelError) => {
        if (settled) return;
        settled = true;
        stopListening();
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = () =>
        finish(
          new KeelError(
            'KEEL_BRIDGE_UNAVAILABLE',
            `the MQTT bridge did not come online: ${this.#lastError ?? 'no answer from the broker'}`,
            { cause: signal?.reason, details: { url: this.#settings.url, state: this.#state } },
          ),
        );
      const stopListening = this.onStateChange((state) => {
        if (state === 'online') finish();
        if (state === 'closed') {
          finish(
            new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the MQTT bridge closed before it was online'),
          );
        }
      });
      if (signal?.aborted === true) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #setState(state: MqttBridgeState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (error) {
        this.#logger.error({ error }, 'an MQTT bridge state listener failed');
      }
    }
  }

  async #shutDown(): Promise<void> {
    this.#stop.abort(new KeelError('KEEL_SHUTTING_DOWN', 'the MQTT bridge is closing'));
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.#settings.closeTimeoutMs);
    timer.unref();
    // Acknowledgements cannot come over a lost connection: stop waiting for them then.
    const onConnectionLost = () => deadline.abort();
    this.#client?.on('close', onConnectionLost);
    try {
      if (!(await settlesBefore(this.#commands.drained(), deadline.signal))) {
        this.#logger.warn('the command handler did not finish before the MQTT bridge closed');
      }
      const client = this.#client;
      if (client?.connected === true) {
        this.#track(
          this.#publish(this.#settings.topics.status, CLOSED, { qos: 1, retain: true }),
          'the offline status',
        );
      }
      await settlesBefore(Promise.allSettled([...this.#inFlight]), deadline.signal);
      if (client !== undefined) {
        // Publishes still unacknowledged after the deadline are abandoned rather than awaited.
        await client.endAsync(Object.keys(client.outgoing).length > 0);
      }
    } finally {
      clearTimeout(timer);
      this.#client?.off('close', onConnectionLost);
      // A state still unacknowledged is abandoned with the connection; its callers learn so.
      this.#states.abandon(new KeelError('KEEL_BRIDGE_UNAVAILABLE', 'the MQTT bridge closed'));
      this.#setState('closed');
      this.#listeners.clear();
      this.#logger.info('MQTT bridge closed');
    }
  }
}
