import { connect, type Socket } from 'node:net';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { encodeFrame, FrameDecoder } from '../worker/frame-codec.ts';
import { CONTROL_FRAME_LIMIT } from './control-server.ts';

const RESPONSE_LIMIT = 64 * 1024 * 1024;

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: KeelError) => void;
  readonly onEvent: ((event: unknown) => void) | undefined;
}

/**
 * The CLI's side of the control socket. `connect` fails with `KEEL_NODE_NOT_RUNNING` when no
 * node listens on the data directory.
 *
 * @example
 * ```ts
 * await using client = await ControlClient.connect(join(dataDirectory, 'keel.sock'));
 * const agents = await client.request('agents.list', {});
 * ```
 */
export class ControlClient implements AsyncDisposable {
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  private constructor(socket: Socket) {
    this.#socket = socket;
    const decoder = new FrameDecoder(RESPONSE_LIMIT);
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        this.#failAll(
          error instanceof KeelError ? error : new KeelError('KEEL_INTERNAL', String(error)),
        );
        socket.destroy();
        return;
      }
      for (const raw of messages) {
        const message = raw as {
          id: number;
          ok?: boolean;
          result?: unknown;
          error?: unknown;
          event?: unknown;
        };
        const pending = this.#pending.get(message.id);
        if (pending === undefined) continue;
        if ('event' in message) {
          pending.onEvent?.(message.event);
          continue;
        }
        this.#pending.delete(message.id);
        if (message.ok === true) pending.resolve(message.result);
        else pending.reject(KeelError.fromJSON(message.error));
      }
    });
    socket.on('close', () =>
      this.#failAll(
        new KeelError('KEEL_NODE_NOT_RUNNING', 'the node closed the control connection'),
      ),
    );
  }

  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new ControlClient(socket)));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
            ? new KeelError('KEEL_NODE_NOT_RUNNING', `no node is listening on ${path}`)
            : new KeelError(
                'KEEL_NODE_NOT_RUNNING',
                `cannot reach the node at ${path}: ${error.message}`,
                {
                  cause: error,
                },
              ),
        );
      });
    });
  }

  /** Sends one request; `onEvent` receives streamed events (`runs.follow`) before the result. */
  request(method: string, params: unknown, onEvent?: (event: unknown) => void): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onEvent });
      try {
        this.#socket.write(encodeFrame({ id, method, params }, CONTROL_FRAME_LIMIT));
      } catch (error) {
        this.#pending.delete(id);
        reject(error);
      }
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #failAll(error: KeelError): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
