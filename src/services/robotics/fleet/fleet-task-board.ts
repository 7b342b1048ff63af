import { KeelError } from '../../../platform/errors/keel-error.ts';
import { createId } from '../../../platform/ids/create-id.ts';
import type { KeyValueStore } from '../../../platform/storage/ports/key-value-store.ts';

export interface FleetTask {
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly postedBy: string;
  readonly postedAt: number;
  readonly claimedBy: string | null;
  readonly claimedAt: number | null;
}

const PREFIX = 'fleet.task.';

/**
 * The fleet's task board: robots post tasks and claim them; a claim is atomic — of any
 * number of robots claiming one task at once, exactly one wins and the others get
 * `KEEL_CONFLICT`. Claims are serialised in this node and persisted in its key-value store.
 * (Across nodes of a cluster a claim needs the shared database's row lock; not built yet.)
 *
 * @example
 * ```ts
 * const task = await board.post('rover-1', { title: 'Inspect bay 3', description: '' }, now);
 * await board.claim(task.id, 'rover-2', now);
 * ```
 */
export class FleetTaskBoard {
  readonly #store: KeyValueStore;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(store: KeyValueStore) {
    this.#store = store;
  }

  post(
    postedBy: string,
    task: { title: string; description: string },
    now: number,
  ): Promise<FleetTask> {
    return this.#serialised(async () => {
      const record: FleetTask = {
        id: createId('task', now),
        title: task.title,
        description: task.description,
        postedBy,
        postedAt: now,
        claimedBy: null,
        claimedAt: null,
      };
      await this.#store.set(PREFIX + record.id, { ...record }, now);
      return record;
    });
  }

  claim(taskId: string, robotId: string, now: number): Promise<FleetTask> {
    return this.#serialised(async () => {
      const task = (await this.#store.get(PREFIX + taskId)) as FleetTask | undefined;
      if (task === undefined) throw new KeelError('KEEL_NOT_FOUND', `no fleet task ${taskId}`);
      if (task.claimedBy !== null) {
        throw new KeelError(
          'KEEL_CONFLICT',
          `fleet task ${taskId} is already claimed by ${task.claimedBy}`,
          {
            details: { claimedBy: task.claimedBy },
          },
        );
      }
      const claimed: FleetTask = { ...task, claimedBy: robotId, claimedAt: now };
      await this.#store.set(PREFIX + taskId, { ...claimed }, now);
      return claimed;
    });
  }

  async list(): Promise<FleetTask[]> {
    const entries = await this.#store.list(PREFIX);
    return entries
      .map(([, value]) => value as unknown as FleetTask)
      .sort((left, right) => left.postedAt - right.postedAt);
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch((error: unknown) => error);
    return next;
  }
}
