import type { z } from 'zod';
import type { Clock } from '../../../../platform/clock/clock.ts';
import { isKeelError, KeelError } from '../../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../../platform/observability/logger.ts';
import {
  type CommandEnvelope,
  type CommandResult,
  checkCommand,
  checkFreshness,
  readCommandEnvelope,
} from './command-envelope.ts';
import type { CommandHandler, CommandOutcome } from './command-handler.ts';
import { type RecentCommand, RecentCommandIds } from './recent-command-ids.ts';

/** What a {@link CommandIntake} needs: limits, the robot's command type, and where results go. */
export interface CommandIntakeOptions<Command> {
  readonly limits: {
    readonly maxPayloadBytes: number;
    readonly maxCommandAgeMs: number;
    readonly maxClockSkewMs: number;
    readonly recentCommandIds: number;
    readonly maxPendingCommands: number;
  };
  readonly commandSchema: z.ZodType<Command>;
  readonly onCommand: CommandHandler<Command>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Aborts when the owner closes: no command is started after that. */
  readonly signal: AbortSignal;
  /** Publishes one encoded {@link CommandResult}. */
  readonly sendResult: (result: Buffer) => void;
  /** Hears every command the intake itself refused (size, JSON, schema, age, backlog…). */
  readonly onRefused?: CommandRefusalListener;
}

/** A command the bridge refused before any handler saw it; `id` is null when unreadable. */
export type CommandRefusalListener = (refusal: {
  readonly id: string | null;
  readonly code: string;
  readonly message: string;
}) => void;

/** Counters of a {@link CommandIntake}. */
export interface CommandIntakeStatistics {
  readonly commandsHandled: number;
  readonly commandsRefused: number;
  readonly duplicateCommands: number;
}

const shuttingDown = () => new KeelError('KEEL_SHUTTING_DOWN', 'the MQTT bridge is closing');

/**
 * Turns raw command payloads into handler calls and results. A payload is checked for size,
 * JSON, envelope, retain flag, backlog, age and schema, in that order; a refusal is answered at
 * once and the handler is not called. Accepted commands run one at a time in arrival order,
 * and their age is checked again just before the handler runs. A redelivered id is never run
 * again: its first result is sent again instead.
 *
 * @example
 * ```ts
 * const intake = new CommandIntake({ limits, commandSchema, onCommand, clock, logger, signal, sendResult });
 * client.on('message', (_topic, payload, packet) => intake.receive(payload, packet.retain));
 * ```
 */
export class CommandIntake<Command> {
  readonly #options: CommandIntakeOptions<Command>;
  readonly #recent: RecentCommandIds;
  readonly #counters = { commandsHandled: 0, commandsRefused: 0, duplicateCommands: 0 };
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;

  constructor(options: CommandIntakeOptions<Command>) {
    this.#options = options;
    this.#recent = new RecentCommandIds(options.limits.recentCommandIds);
  }

  statistics(): CommandIntakeStatistics {
    return { ...this.#counters };
  }

  /** Settles when every command accepted so far has been answered. */
  drained(): Promise<void> {
    return this.#queue;
  }

  /** Takes one payload from the commands topic; never throws. */
  receive(payload: Uint8Array, retained: boolean): void {
    const receivedAt = this.#options.clock.now();
    const reading = readCommandEnvelope(payload, this.#options.limits.maxPayloadBytes);
    if (!reading.ok) {
      this.#answer(reading.id, { ok: false, error: reading.error });
      return;
    }
    const { envelope } = reading;
    const seen = this.#recent.get(envelope.id);
    if (seen !== undefined) {
      // A redelivery (QoS 1 is at-least-once): never act twice. The first delivery's result
      // is sent again once there is one; until then it is on its way.
      this.#counters.duplicateCommands += 1;
      this.#options.logger.debug({ commandId: envelope.id }, 'duplicate command not acted on');
      if (seen.result !== undefined) this.#options.sendResult(seen.result);
      return;
    }
    const refusal = this.#refusalOnArrival(envelope, retained);
    if (refusal !== undefined) {
      this.#answer(envelope.id, { ok: false, error: refusal });
      return;
    }
    const checked = checkCommand(envelope, this.#options.commandSchema);
    if (!checked.ok) {
      this.#answer(envelope.id, { ok: false, error: checked.error });
      return;
    }
    const entry = this.#recent.remember(envelope.id);
    this.#pending += 1;
    this.#queue = this.#queue.then(() => this.#run(envelope, checked.command, receivedAt, entry));
  }

  #refusalOnArrival(envelope: CommandEnvelope, retained: boolean): KeelError | undefined {
    if (this.#options.signal.aborted) return shuttingDown();
    if (retained) {
      return new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'a retained command is refused: publish commands without the retain flag',
      );
    }
    const { maxPendingCommands } = this.#options.limits;
    if (this.#pending >= maxPendingCommands) {
      return new KeelError(
        'KEEL_RATE_LIMITED',
        `${this.#pending} commands are already waiting; the limit is ${maxPendingCommands}`,
      );
    }
    return this.#staleness(envelope);
  }

  #staleness(envelope: CommandEnvelope): KeelError | undefined {
    return checkFreshness(envelope.issuedAt, {
      now: this.#options.clock.now(),
      maxCommandAgeMs: this.#options.limits.maxCommandAgeMs,
      maxClockSkewMs: this.#options.limits.maxClockSkewMs,
    });
  }

  async #run(
    envelope: CommandEnvelope,
    command: Command,
    receivedAt: number,
    entry: RecentCommand,
  ): Promise<void> {
    let outcome: CommandOutcome;
    let handled = false;
    try {
      // Checked again: the command may have waited behind a slow one.
      const refusal = this.#options.signal.aborted ? shuttingDown() : this.#staleness(envelope);
      if (refusal === undefined) {
        handled = true;
        this.#counters.commandsHandled += 1;
        outcome = await this.#options.onCommand(command, {
          id: envelope.id,
          issuedAt: envelope.issuedAt,
          receivedAt,
          signal: this.#options.signal,
        });
      } else {
        outcome = { ok: false, error: refusal };
      }
    } catch (error) {
      outcome = { ok: false, error: this.#handlerError(error, envelope.id) };
    } finally {
      this.#pending -= 1;
    }
    this.#answer(envelope.id, outcome, entry, handled);
  }

  #handlerError(error: unknown, commandId: string | null): KeelError {
    if (isKeelError(error)) return error;
    // Only the log gets the details: they may name paths, hosts or worse.
    this.#options.logger.error({ error, commandId }, 'the command handler failed');
    return new KeelError('KEEL_INTERNAL');
  }

  /** Sends a command's result, remembering it for redeliveries of the same id. */
  #answer(
    id: string | null,
    outcome: CommandOutcome,
    entry?: RecentCommand,
    handled = false,
  ): void {
    if (!handled) {
      this.#counters.commandsRefused += 1;
      if (!outcome.ok) {
        try {
          this.#options.onRefused?.({
            id,
            code: outcome.error.code,
            message: outcome.error.message,
          });
        } catch (error) {
          this.#options.logger.warn({ err: error }, 'a refusal listener failed');
        }
      }
    }
    const result = this.#encode(id, outcome);
    if (entry !== undefined) entry.result = result;
    this.#options.sendResult(result);
  }

  #encode(id: string | null, outcome: CommandOutcome): Buffer {
    let result: CommandResult;
    if (typeof outcome !== 'object' || outcome === null) {
      const error = this.#handlerError(new TypeError('the handler returned no outcome'), id);
      result = { id, ok: false, error: { code: error.code, message: error.message } };
    } else if (outcome.ok) {
      try {
        return Buffer.from(JSON.stringify({ id, ok: true, value: outcome.value ?? null }));
      } catch (failure) {
        const error = this.#handlerError(failure, id);
        result = { id, ok: false, error: { code: error.code, message: error.message } };
      }
    } else {
      const error = this.#handlerError(outcome.error, id);
      result = { id, ok: false, error: { code: error.code, message: error.message } };
    }
    return Buffer.from(JSON.stringify(result));
  }
}
