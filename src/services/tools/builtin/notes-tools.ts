import { z } from 'zod';
import type { Clock } from '../../../platform/clock/clock.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import type { KeyValueStore } from '../../../platform/storage/ports/key-value-store.ts';
import { defineTool, type ToolDefinition } from '../tool-registry.ts';

const MAX_NOTES = 1000;

interface Note extends JsonObject {
  readonly id: string;
  readonly text: string;
  readonly at: number;
}

function keyFor(agentId: string): string {
  return `notes.${agentId}`;
}

async function notesOf(store: KeyValueStore, agentId: string): Promise<Note[]> {
  const stored = await store.get(keyFor(agentId));
  return Array.isArray(stored) ? (stored as Note[]) : [];
}

/**
 * Two small tools every node has: an agent's own notebook. `notes.add` is idempotent by the
 * call's idempotency key, so a replayed run never writes a note twice; the demo agent uses
 * them to show a side effect happening exactly once.
 *
 * @example
 * ```ts
 * new ToolRegistry(createNotesTools(storage.keyValues, clock));
 * ```
 */
export function createNotesTools(store: KeyValueStore, clock: Clock): ToolDefinition<never>[] {
  // One writer at a time per node, so that read-modify-write of a notebook cannot interleave.
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <T>(operation: () => Promise<T>): Promise<T> => {
    const next = queue.then(operation);
    queue = next.catch(() => undefined);
    return next;
  };
  const add = defineTool({
    name: 'notes.add',
    description: "Adds a note to the agent's notebook and returns how many notes it holds.",
    input: z.strictObject({ text: z.string().min(1).max(2000) }),
    execute: ({ text }, context) =>
      serialised(async () => {
        const notes = await notesOf(store, context.agentId);
        if (!notes.some((note) => note.id === context.idempotencyKey)) {
          notes.push({ id: context.idempotencyKey, text, at: clock.now() });
          await store.set(keyFor(context.agentId), notes.slice(-MAX_NOTES), clock.now());
        }
        return { count: notes.length };
      }),
  });
  const list = defineTool({
    name: 'notes.list',
    description: "Lists the notes in the agent's notebook, oldest first.",
    input: z.strictObject({}),
    execute: async (_input, context) =>
      (await notesOf(store, context.agentId)).map((note) => note.text),
  });
  return [add, list] as unknown as ToolDefinition<never>[];
}
