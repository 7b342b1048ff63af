/**
 * The shared memory between the brain (the node's main thread) and the control loop thread:
 * the e-stop latch and its epoch, the brain's heartbeat, a velocity command slot and a state
 * slot. Both slots are seqlocks — the writer makes the sequence odd, writes, makes it even; a
 * reader retries when it saw an odd or changed sequence — and every payload word is itself
 * read and written with `Atomics` (doubles travel as their 64 bits), so no reader on any CPU
 * can see a pair of values that were never written together. Nothing here blocks, so the
 * loop can read it every tick (a payload word moves as a BigInt, a small allocation).
 */

/** Why the e-stop latch was set; stored as a number in shared memory. */
export const ESTOP_REASONS = [
  'none',
  'operator',
  'signal',
  'api',
  'watchdog',
  'fault',
  'shutdown',
] as const;
export type EstopReason = (typeof ESTOP_REASONS)[number];

const INT_SLOTS = 8;
const LATCH = 0;
const LATCH_REASON = 1;
const COMMAND_SEQUENCE = 2;
const STATE_SEQUENCE = 3;
/** The word the loop sleeps on; bumped to wake it at once (an e-stop, a shutdown). */
const WAKE = 4;
const SHUTDOWN = 5;
/** Bumped by every engage: a command stamped with an older epoch is never acted on. */
const EPOCH = 6;
/** Bumped by the brain several times a second: a stale heartbeat stops motion. */
const HEARTBEAT = 7;

const COMMAND_OFFSET = INT_SLOTS * 4;
/**
 * linear, angular, the epoch it was written in, its order among the brain's requests,
 * whether a human sent it (1) or an agent (0), and — outside the seqlock — until when (ms
 * since the epoch) a human's teleoperation suspends agents' motion.
 */
const COMMAND_SLOTS = 6;
const OVERRIDE_UNTIL = 5;
const STATE_OFFSET = COMMAND_OFFSET + COMMAND_SLOTS * 8;
/** The fields of {@link BodyState}, in shared-memory order. */
const STATE_FIELDS = [
  'x',
  'y',
  'yaw',
  'linear',
  'angular',
  'battery',
  'contacts',
  'ticks',
  'overruns',
  'mode',
  'waypoint',
  'nearestAhead',
  'charging',
] as const;
const BYTES = STATE_OFFSET + STATE_FIELDS.length * 8;

export type BodyState = Record<(typeof STATE_FIELDS)[number], number>;

/** A velocity command as the loop reads it. */
export interface VelocityCommand {
  /** The seqlock sequence: changes with every write. */
  sequence: number;
  linear: number;
  angular: number;
  /** The e-stop epoch it was written in. */
  epoch: number;
  /** Its place among everything the brain sent the loop (commands and requests). */
  order: number;
  /** Whether a human (teleoperation) sent it rather than an agent. */
  human: boolean;
}

/** What the loop is doing: 0 idle, 1 velocity, 2 trajectory. */
export const BODY_MODES = ['idle', 'velocity', 'trajectory'] as const;

/**
 * One control mailbox over a `SharedArrayBuffer`, usable from both threads.
 *
 * @example
 * ```ts
 * const mailbox = ControlMailbox.create();
 * mailbox.writeVelocity(0.3, 0, order);     // brain
 * mailbox.readVelocity(command);            // loop
 * ```
 */
export class ControlMailbox {
  readonly buffer: SharedArrayBuffer;
  readonly #ints: Int32Array;
  readonly #command: BigInt64Array;
  readonly #state: BigInt64Array;
  /** Scratch space to move a double's bits in and out of a BigInt64 word. */
  readonly #scratchFloat = new Float64Array(1);
  readonly #scratchBits = new BigInt64Array(this.#scratchFloat.buffer);

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#ints = new Int32Array(buffer, 0, INT_SLOTS);
    this.#command = new BigInt64Array(buffer, COMMAND_OFFSET, COMMAND_SLOTS);
    this.#state = new BigInt64Array(buffer, STATE_OFFSET, STATE_FIELDS.length);
  }

  static create(): ControlMailbox {
    return new ControlMailbox(new SharedArrayBuffer(BYTES));
  }

  /** The same mailbox seen from another thread. */
  static attach(buffer: SharedArrayBuffer): ControlMailbox {
    return new ControlMailbox(buffer);
  }

  // The e-stop latch.

  get engaged(): boolean {
    return Atomics.load(this.#ints, LATCH) === 1;
  }

  get reason(): EstopReason {
    return ESTOP_REASONS[Atomics.load(this.#ints, LATCH_REASON)] ?? 'fault';
  }

  /** The e-stop epoch: it changes with every engage. */
  get epoch(): number {
    return Atomics.load(this.#ints, EPOCH);
  }

  /** Sets the latch and wakes the loop; returns whether it was already set. */
  engage(reason: Exclude<EstopReason, 'none'>): boolean {
    if (Atomics.load(this.#ints, LATCH) === 0) {
      Atomics.store(this.#ints, LATCH_REASON, ESTOP_REASONS.indexOf(reason));
    }
    Atomics.add(this.#ints, EPOCH, 1);
    const before = Atomics.compareExchange(this.#ints, LATCH, 0, 1);
    this.wake();
    return before === 1;
  }

  /** Clears the latch; returns whether it was set. */
  release(): boolean {
    const before = Atomics.exchange(this.#ints, LATCH, 0);
    Atomics.store(this.#ints, LATCH_REASON, 0);
    return before === 1;
  }

  // Loop control.

  wake(): void {
    Atomics.add(this.#ints, WAKE, 1);
    Atomics.notify(this.#ints, WAKE);
  }

  /** Sleeps until woken or `timeoutMs` passes (loop thread only: `Atomics.wait` blocks). */
  sleep(timeoutMs: number): void {
    const seen = Atomics.load(this.#ints, WAKE);
    Atomics.wait(this.#ints, WAKE, seen, timeoutMs);
  }

  requestShutdown(): void {
    Atomics.store(this.#ints, SHUTDOWN, 1);
    this.wake();
  }

  get shutdownRequested(): boolean {
    return Atomics.load(this.#ints, SHUTDOWN) === 1;
  }

  /** The brain says it is alive (its main thread runs). */
  beat(): void {
    Atomics.add(this.#ints, HEARTBEAT, 1);
  }

  get heartbeat(): number {
    return Atomics.load(this.#ints, HEARTBEAT);
  }

  // The velocity command slot (one writer: the brain).

  /** Writes a velocity command, stamped with the present epoch and `order`. */
  writeVelocity(linear: number, angular: number, order: number, human = false): void {
    Atomics.add(this.#ints, COMMAND_SEQUENCE, 1);
    this.#storeFloat(this.#command, 0, linear);
    this.#storeFloat(this.#command, 1, angular);
    this.#storeFloat(this.#command, 2, this.epoch);
    this.#storeFloat(this.#command, 3, order);
    this.#storeFloat(this.#command, 4, human ? 1 : 0);
    Atomics.add(this.#ints, COMMAND_SEQUENCE, 1);
  }

  /** Until when (ms since the epoch) agents' motion is suspended by a human's teleoperation. */
  get overrideUntil(): number {
    return this.#loadFloat(this.#command, OVERRIDE_UNTIL);
  }

  set overrideUntil(epochMs: number) {
    this.#storeFloat(this.#command, OVERRIDE_UNTIL, epochMs);
  }

  /**
   * Reads the newest velocity command into `into`; returns `false` when a write was under
   * way (try again next tick).
   */
  readVelocity(into: VelocityCommand): boolean {
    const before = Atomics.load(this.#ints, COMMAND_SEQUENCE);
    if ((before & 1) === 1) return false;
    const linear = this.#loadFloat(this.#command, 0);
    const angular = this.#loadFloat(this.#command, 1);
    const epoch = this.#loadFloat(this.#command, 2);
    const order = this.#loadFloat(this.#command, 3);
    const human = this.#loadFloat(this.#command, 4) === 1;
    if (Atomics.load(this.#ints, COMMAND_SEQUENCE) !== before) return false;
    into.human = human;
    into.sequence = before;
    into.linear = linear;
    into.angular = angular;
    into.epoch = epoch;
    into.order = order;
    return true;
  }

  // The state slot (one writer: the loop).

  writeState(state: BodyState): void {
    Atomics.add(this.#ints, STATE_SEQUENCE, 1);
    for (let index = 0; index < STATE_FIELDS.length; index += 1) {
      this.#storeFloat(
        this.#state,
        index,
        state[STATE_FIELDS[index] as (typeof STATE_FIELDS)[number]],
      );
    }
    Atomics.add(this.#ints, STATE_SEQUENCE, 1);
  }

  /** The newest consistent state, or `undefined` before the loop wrote one. */
  readState(): BodyState | undefined {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const before = Atomics.load(this.#ints, STATE_SEQUENCE);
      if (before === 0) return undefined;
      if ((before & 1) === 1) continue;
      const values = STATE_FIELDS.map((_, index) => this.#loadFloat(this.#state, index));
      if (Atomics.load(this.#ints, STATE_SEQUENCE) !== before) continue;
      return Object.fromEntries(
        STATE_FIELDS.map((field, index) => [field, values[index] ?? 0]),
      ) as BodyState;
    }
    return undefined;
  }

  #storeFloat(words: BigInt64Array, index: number, value: number): void {
    this.#scratchFloat[0] = value;
    Atomics.store(words, index, this.#scratchBits[0] ?? 0n);
  }

  #loadFloat(words: BigInt64Array, index: number): number {
    this.#scratchBits[0] = Atomics.load(words, index);
    return this.#scratchFloat[0] ?? 0;
  }
}
