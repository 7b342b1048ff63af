/**
 * The shared memory between the brain (the node's main thread) and the control loop thread:
 * the e-stop latch, a velocity command slot and a state slot. Both slots are seqlocks: the
 * writer makes the sequence odd, writes, makes it even; a reader retries when it saw an odd
 * or changed sequence. Nothing here allocates or blocks, so the loop can read it every tick.
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

const COMMAND_OFFSET = INT_SLOTS * 4;
const COMMAND_SLOTS = 4;
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

/** What the loop is doing: 0 idle, 1 velocity, 2 trajectory. */
export const BODY_MODES = ['idle', 'velocity', 'trajectory'] as const;

/**
 * One control mailbox over a `SharedArrayBuffer`, usable from both threads.
 *
 * @example
 * ```ts
 * const mailbox = ControlMailbox.create();
 * mailbox.writeVelocity(0.3, 0);            // brain
 * mailbox.readVelocity(last);               // loop
 * ```
 */
export class ControlMailbox {
  readonly buffer: SharedArrayBuffer;
  readonly #ints: Int32Array;
  readonly #command: Float64Array;
  readonly #state: Float64Array;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#ints = new Int32Array(buffer, 0, INT_SLOTS);
    this.#command = new Float64Array(buffer, COMMAND_OFFSET, COMMAND_SLOTS);
    this.#state = new Float64Array(buffer, STATE_OFFSET, STATE_FIELDS.length);
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

  /** Sets the latch and wakes the loop; returns whether it was already set. */
  engage(reason: Exclude<EstopReason, 'none'>): boolean {
    const before = Atomics.compareExchange(this.#ints, LATCH, 0, 1);
    if (before === 0) Atomics.store(this.#ints, LATCH_REASON, ESTOP_REASONS.indexOf(reason));
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

  // The velocity command slot.

  /** Writes a velocity command; the loop applies it from its next tick. */
  writeVelocity(linear: number, angular: number): void {
    Atomics.add(this.#ints, COMMAND_SEQUENCE, 1);
    this.#command[0] = linear;
    this.#command[1] = angular;
    Atomics.add(this.#ints, COMMAND_SEQUENCE, 1);
  }

  /**
   * Reads the newest velocity command into `into` (`[sequence, linear, angular]`); returns
   * `false` when a write was under way (try again next tick).
   */
  readVelocity(into: Float64Array): boolean {
    const before = Atomics.load(this.#ints, COMMAND_SEQUENCE);
    if ((before & 1) === 1) return false;
    const linear = this.#command[0] ?? 0;
    const angular = this.#command[1] ?? 0;
    if (Atomics.load(this.#ints, COMMAND_SEQUENCE) !== before) return false;
    into[0] = before;
    into[1] = linear;
    into[2] = angular;
    return true;
  }

  // The state slot.

  writeState(state: BodyState): void {
    Atomics.add(this.#ints, STATE_SEQUENCE, 1);
    for (let index = 0; index < STATE_FIELDS.length; index += 1) {
      this.#state[index] = state[STATE_FIELDS[index] as (typeof STATE_FIELDS)[number]];
    }
    Atomics.add(this.#ints, STATE_SEQUENCE, 1);
  }

  /** The newest consistent state, or `undefined` before the loop wrote one. */
  readState(): BodyState | undefined {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const before = Atomics.load(this.#ints, STATE_SEQUENCE);
      if (before === 0) return undefined;
      if ((before & 1) === 1) continue;
      const values = Array.from(this.#state);
      if (Atomics.load(this.#ints, STATE_SEQUENCE) !== before) continue;
      return Object.fromEntries(
        STATE_FIELDS.map((field, index) => [field, values[index] ?? 0]),
      ) as BodyState;
    }
    return undefined;
  }
}
