import { Worker } from 'node:worker_threads';
import { KeelError } from '../../errors/keel-error.ts';
import type { MigrationStatus } from '../storage.ts';
import type {
  MainToWorker,
  OperationName,
  OperationRequest,
  SqliteOperations,
  WorkerData,
  WorkerOpenOptions,
  WorkerToMain,
} from './worker-protocol.ts';

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: KeelError) => void;
}

type ClientState = 'opening' | 'open' | 'closing' | 'closed' | 'failed';

/**
 * The main thread's side of the storage worker: queues requests made during one turn of the
 * event loop and sends them as one batch, matches answers to callers, and fails every caller
 * with a typed error if the worker dies.
 *
 * @example
 * ```ts
 * const { client } = await WorkerClient.start(options, onFatal);
 * await client.call('audit.count', []);
 * ```
 */
export class WorkerClient {
  readonly #worker: Worker;
  readonly #doorbell: Int32Array<SharedArrayBuffer>;
  readonly #path: string;
  readonly #pending = new Map<number, Pending>();
  readonly #onFatal: (error: KeelError) => void;
  #outbox: OperationRequest[] = [];
  #flushScheduled = false;
  #nextId = 1;
  #generation = 0;
  #state: ClientState = 'opening';
  #failure: KeelError | undefined;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  private constructor(
    worker: Worker,
    doorbell: Int32Array<SharedArrayBuffer>,
    path: string,
    onFatal: (error: KeelError) => void,
  ) {
    this.#worker = worker;
    this.#doorbell = doorbell;
    this.#path = path;
    this.#onFatal = onFatal;
  }

  /** Starts the worker and resolves once the database is open and migrated. */
  static async start(
    options: WorkerOpenOptions,
    onFatal: (error: KeelError) => void,
  ): Promise<{ client: WorkerClient; migrations: readonly MigrationStatus[] }> {
    const doorbell = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    const worker = new Worker(new URL('./sqlite-worker.ts', import.meta.url), {
      workerData: { ...options, doorbell } satisfies WorkerData,
      env: {},
      stdout: false,
      stderr: false,
    });
    const client = new WorkerClient(worker, doorbell, options.path, onFatal);
    const migrations = await new Promise<readonly MigrationStatus[]>((resolve, reject) => {
      const onMessage = (message: WorkerToMain): void => {
        if (message.type === 'opened') {
          worker.off('error', onError);
          resolve(message.migrations);
        } else if (message.type === 'open-failed') {
          worker.off('error', onError);
          reject(KeelError.fromJSON(message.error));
        }
      };
      const onError = (error: Error): void => {
        reject(
          new KeelError(
            'KEEL_STORAGE_UNAVAILABLE',
            `the storage worker for ${options.path} failed to start`,
            {
              cause: error,
            },
          ),
        );
      };
      worker.once('message', onMessage);
      worker.once('error', onError);
    }).catch(async (error: unknown) => {
      await worker.terminate();
      throw error;
    });
    client.#attach();
    return { client, migrations };
  }

  get ready(): boolean {
    return this.#state === 'open';
  }

  get failure(): KeelError | undefined {
    return this.#failure;
  }

  #attach(): void {
    this.#state = 'open';
    this.#worker.on('message', (message: WorkerToMain) => this.#receive(message));
    this.#worker.on('error', (error) => {
      this.#fail(
        new KeelError('KEEL_STORAGE_UNAVAILABLE', `the storage worker for ${this.#path} crashed`, {
          cause: error,
        }),
      );
    });
    this.#worker.on('exit', (code) => {
      if (this.#state !== 'closing' && this.#state !== 'closed') {
        this.#fail(
          new KeelError(
            'KEEL_STORAGE_UNAVAILABLE',
            `the storage worker for ${this.#path} exited unexpectedly (code ${code})`,
          ),
        );
      }
    });
  }

  #receive(message: WorkerToMain): void {
    switch (message.type) {
      case 'results':
        for (const result of message.results) {
          const pending = this.#pending.get(result.id);
          if (pending === undefined) continue;
          this.#pending.delete(result.id);
          if (result.ok) pending.resolve(result.value);
          else pending.reject(KeelError.fromJSON(result.error));
        }
        break;
      case 'backup-done': {
        const pending = this.#pending.get(message.id);
        if (pending === undefined) break;
        this.#pending.delete(message.id);
        if (message.error === null) pending.resolve(undefined);
        else pending.reject(KeelError.fromJSON(message.error));
        break;
      }
      default:
        break;
    }
    if (this.#pending.size === 0) this.#drained?.();
  }

  #fail(error: KeelError): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#state = 'failed';
    this.#failure = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#outbox = [];
    this.#drained?.();
    this.#onFatal(error);
  }

  #refusal(): KeelError | undefined {
    if (this.#state === 'open') return undefined;
    if (this.#state === 'failed' && this.#failure !== undefined) return this.#failure;
    return new KeelError('KEEL_SHUTTING_DOWN', `storage for ${this.#path} is closing`);
  }

  /** Runs one storage operation in the worker. */
  call<Name extends OperationName>(
    operation: Name,
    parameters: SqliteOperations[Name]['parameters'],
  ): Promise<SqliteOperations[Name]['result']> {
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#outbox.push({ id, operation, parameters });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // After every pending microtask: callers that wake together (one answer batch
        // resolves many promises) each get their next request into the same message.
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Copies the database to `destination` with SQLite's online backup. */
  backup(destination: string): Promise<void> {
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: () => resolve(), reject });
      this.#send({ type: 'backup', id, destination });
    });
  }

  /**
   * Increments each time the queue is sent. A caller may keep adding to the arguments of a
   * request it queued while the generation is unchanged: they are serialised when sent.
   */
  get generation(): number {
    return this.#generation;
  }

  #flush(): void {
    this.#flushScheduled = false;
    this.#generation += 1;
    if (this.#outbox.length === 0) return;
    const requests = this.#outbox;
    this.#outbox = [];
    this.#send({ type: 'batch', requests });
  }

  /** Posts a message and rings the doorbell the worker sleeps on. */
  #post(message: MainToWorker): void {
    this.#worker.postMessage(message);
    Atomics.add(this.#doorbell, 0, 1);
    Atomics.notify(this.#doorbell, 0);
  }

  #send(message: MainToWorker): void {
    try {
      this.#post(message);
    } catch (error) {
      if (message.type !== 'batch') {
        if (message.type === 'backup') this.#reject(message.id, error);
        return;
      }
      // A request that cannot be cloned fails alone; the others still travel together.
      const sendable = message.requests.filter((request) => {
        try {
          structuredClone(request);
          return true;
        } catch (refusal) {
          this.#reject(request.id, refusal);
          return false;
        }
      });
      if (sendable.length === message.requests.length) {
        for (const request of sendable) this.#reject(request.id, error);
      } else if (sendable.length > 0) {
        this.#send({ type: 'batch', requests: sendable });
      }
    }
  }

  /** Fails a request that could not be sent to the worker. */
  #reject(id: number, cause: unknown): void {
    this.#pending
      .get(id)
      ?.reject(
        new KeelError('KEEL_INVALID_ARGUMENT', 'a storage request could not be sent', { cause }),
      );
    this.#pending.delete(id);
  }

  /** Lets in-flight requests finish, then closes the database and stops the worker. */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = this.#doClose();
    return this.#closed;
  }

  async #doClose(): Promise<void> {
    if (this.#state === 'failed') {
      this.#state = 'closed';
      await this.#worker.terminate();
      return;
    }
    this.#state = 'closing';
    this.#flush();
    if (this.#pending.size > 0) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#post({ type: 'close' });
    await exited;
    this.#state = 'closed';
  }
}
