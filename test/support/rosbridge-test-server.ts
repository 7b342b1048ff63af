import type { AddressInfo } from 'node:net';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

/** One operation a client sent, as the server received it. */
export interface RecordedOperation {
  /** Which connection sent it: 1 for the first connection the server accepted, and so on. */
  readonly connection: number;
  readonly op: string;
  readonly topic: string | undefined;
  readonly frame: Readonly<Record<string, unknown>>;
}

interface Connection {
  readonly number: number;
  readonly socket: WebSocket;
  readonly advertised: Map<string, string>;
  /** Subscription id → topic. */
  readonly subscriptions: Map<string, string>;
}

/**
 * A real rosbridge v2 server for tests, on 127.0.0.1: it records every operation, keeps each
 * connection's advertisements and subscriptions (and forgets them when the socket closes, as
 * rosbridge does), routes a client's `publish` to every subscriber of the topic, and answers a
 * publish on an unadvertised topic with a `status` error. Tests can publish to subscribers,
 * inject raw frames, drop every connection, go silent, and stop and restart on the same port.
 *
 * @example
 * ```ts
 * const server = await RosbridgeTestServer.start();
 * const client = new RosbridgeClient({ url: server.url, logger });
 * server.publish('/scan', scanMessage);
 * await server.stop();
 * ```
 */
export class RosbridgeTestServer implements AsyncDisposable {
  readonly #operations: RecordedOperation[] = [];
  readonly #connections = new Set<Connection>();
  #server: WebSocketServer | undefined;
  #port: number;
  #accepted = 0;
  #unresponsive = false;

  private constructor(port: number) {
    this.#port = port;
  }

  /** Starts listening on 127.0.0.1, on `port` or an ephemeral one. */
  static async start(options: { readonly port?: number } = {}): Promise<RosbridgeTestServer> {
    const server = new RosbridgeTestServer(options.port ?? 0);
    await server.#listen();
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#port}`;
  }

  /** Connections accepted since the server was created, across restarts. */
  get connectionCount(): number {
    return this.#accepted;
  }

  get openConnectionCount(): number {
    return this.#connections.size;
  }

  /** The operations received, optionally only those matching every given field. */
  operations(
    filter: { readonly op?: string; readonly topic?: string; readonly connection?: number } = {},
  ): RecordedOperation[] {
    return this.#operations.filter(
      (operation) =>
        (filter.op === undefined || operation.op === filter.op) &&
        (filter.topic === undefined || operation.topic === filter.topic) &&
        (filter.connection === undefined || operation.connection === filter.connection),
    );
  }

  /** Sends `message` on `topic` to every connection subscribed to it; returns how many. */
  publish(topic: string, message: Readonly<Record<string, unknown>>): number {
    const text = JSON.stringify({ op: 'publish', topic, msg: message });
    let sent = 0;
    for (const connection of this.#connections) {
      if (![...connection.subscriptions.values()].includes(topic)) continue;
      connection.socket.send(text);
      sent += 1;
    }
    return sent;
  }

  /** Sends `data` unchanged to every open connection (malformed frames, huge frames, …). */
  sendRaw(data: string | Buffer): number {
    for (const connection of this.#connections) connection.socket.send(data);
    return this.#connections.size;
  }

  /** Cuts every connection without a closing handshake, as a crashed network would. */
  dropConnections(): void {
    for (const connection of this.#connections) connection.socket.terminate();
  }

  /** While set, the server answers no ping and sends nothing: a half-open, dead link. */
  setUnresponsive(unresponsive: boolean): void {
    this.#unresponsive = unresponsive;
  }

  /** Drops every connection and stops listening; the port stays reserved for `restart()`. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    for (const connection of this.#connections) connection.socket.terminate();
    this.#connections.clear();
    await new Promise<void>((resolve, reject) =>
      server.close((error) => (error === undefined ? resolve() : reject(error))),
    );
  }

  /** Listens again on the same port (stopping first if still running). */
  async restart(): Promise<void> {
    await this.stop();
    this.#unresponsive = false;
    await this.#listen();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #listen(): Promise<void> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: this.#port, autoPong: false });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
    server.on('connection', (socket) => this.#accept(socket));
  }

  #accept(socket: WebSocket): void {
    this.#accepted += 1;
    const connection: Connection = {
      number: this.#accepted,
      socket,
      advertised: new Map(),
      subscriptions: new Map(),
    };
    this.#connections.add(connection);
    socket.on('ping', (data) => {
      if (!this.#unresponsive) socket.pong(data);
    });
    socket.on('message', (data: RawData) => this.#receive(connection, data));
    socket.on('close', () => this.#connections.delete(connection));
    // A client that goes away mid-write is what these tests provoke; nothing to do but forget it.
    socket.on('error', () => this.#connections.delete(connection));
  }

  #receive(connection: Connection, data: RawData): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(String(data)) as Record<string, unknown>;
    } catch {
      this.#record(connection, { op: '(unparseable)', text: String(data) });
      return;
    }
    this.#record(connection, frame);
    if (this.#unresponsive) return;
    const topic = typeof frame.topic === 'string' ? frame.topic : '';
    const id = typeof frame.id === 'string' ? frame.id : undefined;
    switch (frame.op) {
      case 'advertise':
        connection.advertised.set(topic, String(frame.type));
        return;
      case 'unadvertise':
        connection.advertised.delete(topic);
        return;
      case 'subscribe':
        connection.subscriptions.set(id ?? `subscribe:${topic}`, topic);
        return;
      case 'unsubscribe':
        for (const [key, subscribedTopic] of connection.subscriptions) {
          if (key === id || (id === undefined && subscribedTopic === topic)) {
            connection.subscriptions.delete(key);
          }
        }
        return;
      case 'publish':
        if (!connection.advertised.has(topic)) {
          const status = { op: 'status', level: 'error', id, msg: `${topic} is not advertised` };
          connection.socket.send(JSON.stringify(status));
          return;
        }
        this.publish(topic, frame.msg as Record<string, unknown>);
        return;
      default:
        return;
    }
  }

  #record(connection: Connection, frame: Record<string, unknown>): void {
    this.#operations.push({
      connection: connection.number,
      op: String(frame.op),
      topic: typeof frame.topic === 'string' ? frame.topic : undefined,
      frame,
    });
  }
}
