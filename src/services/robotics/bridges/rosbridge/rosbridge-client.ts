import WebSocket, { type RawData } from 'ws';
import { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../../platform/observability/logger.ts';
import { decodeRosbridgeFrame } from './decode-rosbridge-frame.ts';
import {
  type RosbridgeClientOptions,
  type RosbridgeClientSettings,
  readRosbridgeClientSettings,
} from './rosbridge-client-settings.ts';
import { type RosbridgeCounters, RosbridgeDiagnostics } from './rosbridge-diagnostics.ts';
import {
  type RosbridgeOperation,
  type RosbridgeSubscribeOptions,
  RosbridgeTopicRegistry,
} from './rosbridge-topic-registry.ts';

export type { RosbridgeClientOptions } from './rosbridge-client-settings.ts';
export type { RosbridgeCounters } from './rosbridge-diagnostics.ts';
export type { RosbridgeSubscribeOptions } from './rosbridge-topic-registry.ts';

/**
 * `idle` until `start()`; `connecting` for the first attempt; `reconnecting` while waiting for or
 * making any later attempt; `closed` after `close()`, for good.
 */
export type RosbridgeConnectionState =
  | 'idle'
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'closed';

/** One transition of the connection state; `delayMs` and `attempt` come with `reconnecting`. */
export interface RosbridgeStateChange {
  readonly state: RosbridgeConnectionState;
  readonly previous: RosbridgeConnectionState;
  /** 0 for the first retry after a stable connection; grows until a connection is stable. */
  readonly attempt?: number;
  /** How long the client waits before this attempt (exponential backoff with jitter). */
  readonly delayMs?: number;
}

/** A subscription made with {@link RosbridgeClient.subscribe}; kept across reconnects. */
export interface RosbridgeSubscription extends Disposable {
  readonly id: string;
  readonly topic: string;
  /** Stops delivery and tells the server; idempotent. */
  unsubscribe(): void;
}

/**
 * A client for the rosbridge v2 protocol (JSON over WebSocket): advertise and publish topics,
 * subscribe to topics, and stay connected. The connection is re-established with exponential
 * backoff and jitter; after every reconnect every advertised topic is advertised again and every
 * subscription is subscribed again, before the state turns `connected`.
 *
 * Publishing is fire-now-or-fail: while not connected (or while the socket's send buffer is
 * over `maxBufferedBytes`, a stalled link), `publish` throws `KEEL_BRIDGE_UNAVAILABLE` at once and
 * nothing is queued. A motion command must never reach the robot late, after a reconnect; the
 * caller decides what to send once the link is back.
 *
 * Incoming frames over `maxFrameBytes` are dropped and counted, and the connection stays up (a
 * single huge message must not force a reconnect storm); frames over four times that are refused
 * by the WebSocket layer itself, which closes the connection (and the client reconnects), so
 * memory stays bounded. Unparseable frames, frames of the wrong shape and messages a
 * subscription's schema rejects are dropped, counted in {@link RosbridgeClient.counters} and
 * logged; nothing that arrives can throw out of the client.
 *
 * @example
 * ```ts
 * const client = new RosbridgeClient({ url: 'ws://robot.local:9090', logger });
 * client.advertise('/cmd_vel', 'geometry_msgs/Twist');
 * client.subscribe({ topic: '/odom', type: 'nav_msgs/Odometry', schema: odometrySchema, onMessage });
 * client.start();
 * await client.waitUntilConnected(AbortSignal.timeout(5_000));
 * client.publish('/cmd_vel', { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } });
 * await client.close();
 * ```
 */
export class RosbridgeClient implements AsyncDisposable {
  readonly #settings: RosbridgeClientSettings;
  readonly #logger: Logger;
  readonly #diagnostics: RosbridgeDiagnostics;
  readonly #registry: RosbridgeTopicRegistry;
  readonly #stateListeners = new Set<(change: RosbridgeStateChange) => void>();
  #state: RosbridgeConnectionState = 'idle';
  #socket: WebSocket | undefined;
  #attempt = 0;
  #awaitingPong = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #stableTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(options: RosbridgeClientOptions) {
    this.#settings = readRosbridgeClientSettings(options);
    this.#logger = options.logger.child({ component: 'rosbridge', url: this.#settings.safeUrl });
    this.#diagnostics = new RosbridgeDiagnostics(this.#logger);
    this.#registry = new RosbridgeTopicRegistry(this.#diagnostics);
  }

  get state(): RosbridgeConnectionState {
    return this.#state;
  }

  /** A snapshot of the frame and connection counters. */
  get counters(): RosbridgeCounters {
    return this.#diagnostics.snapshot();
  }

  /** Calls `listener` on every state change; returns a function that stops it. */
  onStateChange(listener: (change: RosbridgeStateChange) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Calls `listener` for every `status` operation the server sends (also logged). */
  onStatus(listener: (status: { level: string; text: string }) => void): () => void {
    return this.#diagnostics.onStatus(listener);
  }

  /** Starts connecting; reconnects on its own until `close()`. */
  start(): void {
    if (this.#state !== 'idle') return;
    this.#setState({ state: 'connecting', previous: this.#state });
    this.#connect();
  }

  /** Resolves once connected; rejects with `KEEL_ABORTED` on abort or `KEEL_BRIDGE_UNAVAILABLE` on close. */
  waitUntilConnected(signal: AbortSignal): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const finish = (error?: KeelError): void => {
        stop();
        signal.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = (): void =>
        finish(
          new KeelError('KEEL_ABORTED', 'stopped waiting for rosbridge', { cause: signal.reason }),
        );
      const stop = this.onStateChange(({ state }) => {
        if (state === 'connected') finish();
        else if (state === 'closed') finish(unavailable('the rosbridge client was closed'));
      });
      if (signal.aborted) onAbort();
      else if (this.#state === 'closed') finish(unavailable('the rosbridge client was closed'));
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Advertises a topic now (if connected) and after every reconnect. Idempotent per type. */
  advertise(topic: string, type: string): void {
    this.#requireOpenClient();
    this.#send(this.#registry.advertise(topic, type));
  }

  /** Withdraws an advertisement; publishing to the topic is refused afterwards. */
  unadvertise(topic: string): void {
    this.#send(this.#registry.unadvertise(topic));
  }

  /**
   * Publishes one message on an advertised topic, now or never: throws `KEEL_BRIDGE_UNAVAILABLE`
   * when not connected or when the link is stalled, and never queues for a later connection.
   */
  publish(topic: string, message: Readonly<Record<string, unknown>>): void {
    if (!this.#registry.isAdvertised(topic)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `topic ${topic} is not advertised`, {
        details: { topic },
      });
    }
    const socket = this.#socket;
    if (this.#state !== 'connected' || socket?.readyState !== WebSocket.OPEN) {
      throw unavailable('rosbridge is not connected; the message was not sent', {
        topic,
        state: this.#state,
      });
    }
    if (socket.bufferedAmount > this.#settings.maxBufferedBytes) {
      throw unavailable('the rosbridge link is stalled; the message was not sent', {
        topic,
        bufferedBytes: socket.bufferedAmount,
        maxBufferedBytes: this.#settings.maxBufferedBytes,
      });
    }
    const text = JSON.stringify({
      op: 'publish',
      id: this.#registry.createId('publish', topic),
      topic,
      msg: message,
    });
    if (Buffer.byteLength(text) > this.#settings.maxFrameBytes) {
      throw new KeelError('KEEL_PAYLOAD_TOO_LARGE', `the message for ${topic} is too large`, {
        details: { topic, limitBytes: this.#settings.maxFrameBytes },
      });
    }
    this.#sendText(socket, text);
  }

  /** Subscribes now (if connected) and after every reconnect; messages are validated by `schema`. */
  subscribe<Message>(options: RosbridgeSubscribeOptions<Message>): RosbridgeSubscription {
    this.#requireOpenClient();
    const { id, operation } = this.#registry.subscribe(options);
    this.#send(operation);
    const unsubscribe = (): void => this.#send(this.#registry.unsubscribe(id));
    return { id, topic: options.topic, unsubscribe, [Symbol.dispose]: unsubscribe };
  }

  /** Stops reconnecting, clears every timer and closes the socket; idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState({ state: 'closed', previous: this.#state });
    this.#clearTimers();
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    if (socket.readyState === WebSocket.OPEN) {
      socket.close(1000, 'client closed');
      const fallback = setTimeout(() => socket.terminate(), this.#settings.closeTimeoutMs);
      await closed;
      clearTimeout(fallback);
    } else {
      socket.terminate();
      await closed;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #connect(): void {
    const socket = new WebSocket(this.#settings.url, {
      handshakeTimeout: this.#settings.connectTimeoutMs,
      maxPayload: this.#settings.maxFrameBytes * 4,
      perMessageDeflate: false,
    });
    this.#socket = socket;
    socket.on('open', () => {
      if (socket === this.#socket) this.#handleOpen(socket);
    });
    socket.on('message', (data: RawData) => {
      if (socket === this.#socket) this.#handleFrame(data);
    });
    socket.on('pong', () => {
      this.#awaitingPong = false;
    });
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.#diagnostics.drop('oversizedFrames', { reason: 'over the WebSocket limit' });
      }
      this.#logger.warn({ err: error, attempt: this.#attempt }, 'rosbridge connection error');
    });
    socket.on('close', (code: number) => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      this.#clearTimers();
      this.#logger.info({ code }, 'rosbridge connection closed');
      this.#scheduleReconnect();
    });
  }

  #handleOpen(socket: WebSocket): void {
    this.#diagnostics.count('connections');
    this.#awaitingPong = false;
    for (const operation of this.#registry.replay()) this.#send(operation);
    this.#stableTimer = setTimeout(() => {
      this.#attempt = 0;
    }, this.#settings.stableConnectionMs);
    if (this.#settings.heartbeatIntervalMs > 0) {
      this.#heartbeatTimer = setInterval(
        () => this.#heartbeat(socket),
        this.#settings.heartbeatIntervalMs,
      );
    }
    this.#logger.info(
      {
        advertised: this.#registry.advertisedCount,
        subscriptions: this.#registry.subscriptionCount,
      },
      'rosbridge connected',
    );
    this.#setState({ state: 'connected', previous: this.#state });
  }

  #heartbeat(socket: WebSocket): void {
    if (this.#awaitingPong) {
      this.#diagnostics.count('heartbeatTimeouts');
      this.#logger.warn('rosbridge did not answer a ping; dropping the connection');
      socket.terminate();
      return;
    }
    this.#awaitingPong = true;
    socket.ping();
  }

  #handleFrame(data: RawData): void {
    this.#awaitingPong = false;
    this.#diagnostics.count('framesReceived');
    const frame = decodeRosbridgeFrame(data, this.#settings.maxFrameBytes);
    switch (frame.kind) {
      case 'publish':
        if (!this.#registry.dispatch(frame.topic, frame.message)) {
          this.#diagnostics.drop('ignoredFrames', { topic: frame.topic });
        }
        return;
      case 'status':
        this.#diagnostics.status(frame.level, frame.text, frame.id);
        return;
      case 'ignored':
        this.#diagnostics.drop('ignoredFrames', { op: frame.op });
        return;
      case 'oversized':
        this.#diagnostics.drop('oversizedFrames', { bytes: frame.bytes });
        return;
      case 'unparseable':
        this.#diagnostics.drop('unparseableFrames', { reason: frame.reason });
        return;
      case 'invalid':
        this.#diagnostics.drop('invalidFrames', { reason: frame.reason });
        return;
    }
  }

  #scheduleReconnect(): void {
    if (this.#state === 'closed') return;
    const attempt = this.#attempt;
    const { initialReconnectDelayMs, maxReconnectDelayMs } = this.#settings;
    // "Equal jitter": half the ceiling for sure, half at random, so the delay still grows
    // while clients that lost the same server do not come back together.
    const ceiling = Math.min(
      maxReconnectDelayMs,
      initialReconnectDelayMs * 2 ** Math.min(attempt, 30),
    );
    const random = this.#settings.random();
    const fraction = random >= 0 && random <= 1 ? random : 1;
    const delayMs = Math.round(ceiling * (0.5 + 0.5 * fraction));
    this.#attempt = attempt + 1;
    this.#diagnostics.count('reconnectAttempts');
    this.#setState({ state: 'reconnecting', previous: this.#state, attempt, delayMs });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state !== 'closed') this.#connect();
    }, delayMs);
  }

  // Sends only on an open socket: anything recorded in the registry is replayed on the next one.
  #send(operation: RosbridgeOperation | undefined): void {
    const socket = this.#socket;
    if (operation === undefined || socket?.readyState !== WebSocket.OPEN) return;
    this.#sendText(socket, JSON.stringify(operation));
  }

  #sendText(socket: WebSocket, text: string): void {
    socket.send(text, (error) => {
      if (error !== undefined && error !== null) {
        this.#logger.warn({ err: error }, 'rosbridge send failed');
      }
    });
  }

  #setState(change: RosbridgeStateChange): void {
    this.#state = change.state;
    for (const listener of [...this.#stateListeners]) {
      try {
        listener(change);
      } catch (error) {
        this.#logger.error({ err: error, state: change.state }, 'a state listener threw');
      }
    }
  }

  #clearTimers(): void {
    clearTimeout(this.#stableTimer);
    clearInterval(this.#heartbeatTimer);
    this.#stableTimer = undefined;
    this.#heartbeatTimer = undefined;
  }

  #requireOpenClient(): void {
    if (this.#state === 'closed') throw unavailable('the rosbridge client is closed');
  }
}

function unavailable(message: string, details: Record<string, unknown> = {}): KeelError {
  return new KeelError('KEEL_BRIDGE_UNAVAILABLE', message, { details });
}
