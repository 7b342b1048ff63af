import { KeelError } from '../../platform/errors/keel-error.ts';
import { BinaryHeap } from './binary-heap.ts';

/** The lowest run priority. */
export const MIN_RUN_PRIORITY = 0;
/** The highest run priority; higher priorities are dispatched first. */
export const MAX_RUN_PRIORITY = 9;

/** A run waiting in a {@link FairRunQueue}. */
export interface QueuedRun {
  readonly runId: string;
  readonly agentId: string;
  /** A whole number from 0 to 9; higher is dispatched first. */
  readonly priority: number;
  /** Epoch milliseconds; runs of one agent at one priority start in this order. */
  readonly enqueuedAt: number;
}

export interface FairRunQueueOptions {
  /** How many runs may be active at once, over all agents. */
  readonly maxConcurrent: number;
  /** How many runs of one agent may be active at once; 0 holds all of its runs. */
  readonly maxPerAgent: (agentId: string) => number;
}

interface PendingNode {
  readonly run: QueuedRun;
  readonly line: AgentLine;
  previous: PendingNode | undefined;
  next: PendingNode | undefined;
}

/** The pending runs of one agent at one priority, oldest first. */
interface AgentLine {
  readonly agent: AgentState;
  readonly priority: number;
  head: PendingNode | undefined;
  tail: PendingNode | undefined;
  size: number;
  /** When this line last started a run, as a queue sequence number; 0 if never. */
  servedAt: number;
  /** Whether the line has an entry in its priority's rotation heap. */
  inRotation: boolean;
}

interface AgentState {
  readonly agentId: string;
  /** Breaks ties between agents never served: the one the queue met first goes first. */
  readonly sequence: number;
  readonly lines: (AgentLine | undefined)[];
  pending: number;
  active: number;
  paused: boolean;
}

/** Least recently served first; among lines never served, the agent met first. */
function compareLines(left: AgentLine, right: AgentLine): number {
  return left.servedAt - right.servedAt || left.agent.sequence - right.agent.sequence;
}

/**
 * An in-memory queue of pending runs that decides which may start, fairly:
 *
 * - higher priority first;
 * - among runs of equal priority, agents take turns: the agent served least recently at that
 *   priority goes first, and one agent's runs start in `enqueuedAt` order;
 * - an agent at its own cap (`maxPerAgent`) or paused is skipped, its runs waiting, without
 *   holding back other agents;
 * - at most `maxConcurrent` runs are active at once.
 *
 * Each priority keeps a heap of the agents that may start a run there, so `takeReady` costs
 * O(log agents) per run it starts, whatever the number of queued runs. An agent's turn is
 * remembered while it has runs queued or active or is paused; an agent that becomes idle is
 * forgotten and returns as one never served. `maxPerAgent` is consulted when an agent's turn
 * comes and when its runs are enqueued or released; after raising an agent's cap, call
 * {@link FairRunQueue.reconsider}.
 *
 * @example
 * ```ts
 * const queue = new FairRunQueue({ maxConcurrent: 8, maxPerAgent: () => 2 });
 * queue.enqueue({ runId: 'r1', agentId: 'a1', priority: 5, enqueuedAt: Date.now() });
 * for (const run of queue.takeReady()) startWorker(run);
 * // when the run ends, or its worker dies:
 * queue.release('r1');
 * ```
 */
export class FairRunQueue {
  readonly #maxConcurrent: number;
  readonly #maxPerAgent: (agentId: string) => number;
  readonly #agents = new Map<string, AgentState>();
  readonly #pending = new Map<string, PendingNode>();
  readonly #active = new Map<string, AgentState>();
  readonly #rotations: readonly BinaryHeap<AgentLine>[];
  #sequence = 0;

  constructor(options: FairRunQueueOptions) {
    if (!Number.isInteger(options.maxConcurrent) || options.maxConcurrent < 1) {
      throw invalid('maxConcurrent', 'maxConcurrent must be a whole number of at least 1', {
        value: String(options.maxConcurrent),
      });
    }
    if (typeof options.maxPerAgent !== 'function') {
      throw invalid('maxPerAgent', 'maxPerAgent must be a function of the agent id', {});
    }
    this.#maxConcurrent = options.maxConcurrent;
    this.#maxPerAgent = options.maxPerAgent;
    this.#rotations = Array.from(
      { length: MAX_RUN_PRIORITY + 1 },
      () => new BinaryHeap<AgentLine>(compareLines),
    );
  }

  /** How many runs wait to start. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** How many runs were taken and not yet released. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** How many runs of an agent are active. */
  activeFor(agentId: string): number {
    return this.#agents.get(agentId)?.active ?? 0;
  }

  /** Whether an agent is paused. */
  isPaused(agentId: string): boolean {
    return this.#agents.get(agentId)?.paused ?? false;
  }

  /**
   * Adds a run to the queue. A run whose id is already pending or active is ignored, so
   * enqueueing is idempotent; once released, the id may be enqueued again.
   *
   * @returns whether the run was added.
   * @throws KeelError `KEEL_INVALID_ARGUMENT` for an empty id, a priority outside 0-9 or an
   * `enqueuedAt` that is not a finite number.
   */
  enqueue(run: QueuedRun): boolean {
    checkRun(run);
    if (this.#pending.has(run.runId) || this.#active.has(run.runId)) return false;
    const agent = this.#agentState(run.agentId);
    let line = agent.lines[run.priority];
    if (line === undefined) {
      line = {
        agent,
        priority: run.priority,
        head: undefined,
        tail: undefined,
        size: 0,
        servedAt: 0,
        inRotation: false,
      };
      agent.lines[run.priority] = line;
    }
    const stored: QueuedRun = Object.freeze({
      runId: run.runId,
      agentId: run.agentId,
      priority: run.priority,
      enqueuedAt: run.enqueuedAt,
    });
    const node: PendingNode = { run: stored, line, previous: undefined, next: undefined };
    // Runs usually arrive in time order, so the walk back from the tail is short.
    let before = line.tail;
    while (before !== undefined && before.run.enqueuedAt > stored.enqueuedAt) {
      before = before.previous;
    }
    node.previous = before;
    node.next = before === undefined ? line.head : before.next;
    if (node.previous === undefined) line.head = node;
    else node.previous.next = node;
    if (node.next === undefined) line.tail = node;
    else node.next.previous = node;
    line.size += 1;
    agent.pending += 1;
    this.#pending.set(stored.runId, node);
    this.#offer(line);
    return true;
  }

  /** A run waiting in the queue (not one taken from it), as it was enqueued. */
  pendingRun(runId: string): QueuedRun | undefined {
    return this.#pending.get(runId)?.run;
  }

  /**
   * Removes a pending run, for example one cancelled while queued. An active run is not
   * removed; release it instead.
   *
   * @returns whether a pending run was removed.
   */
  remove(runId: string): boolean {
    const node = this.#pending.get(runId);
    if (node === undefined) return false;
    this.#unlink(node);
    this.#forgetIfIdle(node.line.agent);
    return true;
  }

  /**
   * Takes the runs that may start now, in dispatch order, and marks them active, until the
   * global cap is reached or no waiting run may start.
   */
  takeReady(): QueuedRun[] {
    const taken: QueuedRun[] = [];
    while (this.#active.size < this.#maxConcurrent) {
      const run = this.#takeNext();
      if (run === undefined) break;
      taken.push(run);
    }
    return taken;
  }

  /**
   * Frees the slot of an active run that ended (or whose worker died).
   *
   * @returns whether the run was active; an unknown or pending id gives false.
   */
  release(runId: string): boolean {
    const agent = this.#active.get(runId);
    if (agent === undefined) return false;
    this.#active.delete(runId);
    agent.active -= 1;
    this.#offerAll(agent);
    this.#forgetIfIdle(agent);
    return true;
  }

  /** Holds an agent's runs in the queue until {@link FairRunQueue.resume}; active runs go on. */
  pause(agentId: string): void {
    this.#agentState(agentId).paused = true;
  }

  /** Lets a paused agent's runs be taken again. */
  resume(agentId: string): void {
    const agent = this.#agents.get(agentId);
    if (agent === undefined || !agent.paused) return;
    agent.paused = false;
    this.#offerAll(agent);
    this.#forgetIfIdle(agent);
  }

  /** Looks at an agent's waiting runs again, for example after its per-agent cap was raised. */
  reconsider(agentId: string): void {
    const agent = this.#agents.get(agentId);
    if (agent !== undefined) this.#offerAll(agent);
  }

  /**
   * A snapshot of the pending runs in the order they would be dispatched if no cap or pause
   * applied: priority from highest, agents taking turns by least recently served, and each
   * agent's runs in `enqueuedAt` order. Costs O(n + agents log agents).
   */
  pending(): readonly QueuedRun[] {
    const snapshot: QueuedRun[] = [];
    for (let priority = MAX_RUN_PRIORITY; priority >= MIN_RUN_PRIORITY; priority -= 1) {
      const lines: AgentLine[] = [];
      for (const agent of this.#agents.values()) {
        const line = agent.lines[priority];
        if (line !== undefined && line.size > 0) lines.push(line);
      }
      lines.sort(compareLines);
      let cursors = lines.map((line) => line.head);
      while (cursors.length > 0) {
        const advanced: (PendingNode | undefined)[] = [];
        for (const node of cursors) {
          if (node === undefined) continue;
          snapshot.push(node.run);
          if (node.next !== undefined) advanced.push(node.next);
        }
        cursors = advanced;
      }
    }
    return Object.freeze(snapshot);
  }

  #takeNext(): QueuedRun | undefined {
    for (let priority = MAX_RUN_PRIORITY; priority >= MIN_RUN_PRIORITY; priority -= 1) {
      const rotation = this.#rotations[priority];
      if (rotation === undefined) continue;
      for (let line = rotation.pop(); line !== undefined; line = rotation.pop()) {
        line.inRotation = false;
        const agent = line.agent;
        const node = line.head;
        if (node === undefined || !this.#mayStart(agent)) {
          // Paused, at its cap or emptied by remove: it rejoins through #offer when that changes.
          this.#forgetIfIdle(agent);
          continue;
        }
        this.#unlink(node);
        agent.active += 1;
        this.#active.set(node.run.runId, agent);
        this.#sequence += 1;
        line.servedAt = this.#sequence;
        this.#offer(line);
        return node.run;
      }
    }
    return undefined;
  }

  #mayStart(agent: AgentState): boolean {
    return !agent.paused && agent.active < this.#maxPerAgent(agent.agentId);
  }

  /** Puts a line in its rotation if it has runs, is not there yet and its agent may start one. */
  #offer(line: AgentLine): void {
    if (line.inRotation || line.size === 0 || !this.#mayStart(line.agent)) return;
    line.inRotation = true;
    this.#rotations[line.priority]?.push(line);
  }

  #offerAll(agent: AgentState): void {
    for (const line of agent.lines) {
      if (line !== undefined) this.#offer(line);
    }
  }

  #unlink(node: PendingNode): void {
    const line = node.line;
    if (node.previous === undefined) line.head = node.next;
    else node.previous.next = node.next;
    if (node.next === undefined) line.tail = node.previous;
    else node.next.previous = node.previous;
    node.previous = undefined;
    node.next = undefined;
    line.size -= 1;
    line.agent.pending -= 1;
    this.#pending.delete(node.run.runId);
  }

  #agentState(agentId: string): AgentState {
    let agent = this.#agents.get(agentId);
    if (agent === undefined) {
      this.#sequence += 1;
      agent = {
        agentId,
        sequence: this.#sequence,
        lines: new Array<AgentLine | undefined>(MAX_RUN_PRIORITY + 1).fill(undefined),
        pending: 0,
        active: 0,
        paused: false,
      };
      this.#agents.set(agentId, agent);
    }
    return agent;
  }

  /**
   * Forgets an agent with nothing queued, active or paused. One whose line still sits in a
   * rotation heap is kept, so that entry never outlives its agent's record.
   */
  #forgetIfIdle(agent: AgentState): void {
    if (agent.pending > 0 || agent.active > 0 || agent.paused) return;
    if (agent.lines.some((line) => line?.inRotation === true)) return;
    this.#agents.delete(agent.agentId);
  }
}

/**
 * Throws `KEEL_INVALID_ARGUMENT` unless `priority` is a whole number from
 * {@link MIN_RUN_PRIORITY} to {@link MAX_RUN_PRIORITY}.
 *
 * @example
 * ```ts
 * checkRunPriority(request.priority ?? 5); // before anything of the run is stored
 * ```
 */
export function checkRunPriority(priority: number, runId?: string): void {
  if (Number.isInteger(priority) && priority >= MIN_RUN_PRIORITY && priority <= MAX_RUN_PRIORITY) {
    return;
  }
  throw invalid(
    'priority',
    `a run priority is a whole number from ${MIN_RUN_PRIORITY} to ${MAX_RUN_PRIORITY}`,
    { ...(runId === undefined ? {} : { runId }), value: String(priority) },
  );
}

function checkRun(run: QueuedRun): void {
  if (typeof run.runId !== 'string' || run.runId === '') {
    throw invalid('runId', 'a queued run needs a non-empty runId', {});
  }
  if (typeof run.agentId !== 'string' || run.agentId === '') {
    throw invalid('agentId', 'a queued run needs a non-empty agentId', { runId: run.runId });
  }
  checkRunPriority(run.priority, run.runId);
  if (typeof run.enqueuedAt !== 'number' || !Number.isFinite(run.enqueuedAt)) {
    throw invalid('enqueuedAt', 'enqueuedAt must be a finite epoch millisecond time', {
      runId: run.runId,
    });
  }
}

function invalid(
  field: string,
  message: string,
  details: Readonly<Record<string, unknown>>,
): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', message, { details: { field, ...details } });
}
