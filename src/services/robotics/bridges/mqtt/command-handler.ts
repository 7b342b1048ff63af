import type { KeelError } from '../../../../platform/errors/keel-error.ts';
import type { JsonValue } from '../../../../platform/storage/ports/json-value.ts';

/** What the bridge tells a command handler besides the command. */
export interface CommandMeta {
  /** The envelope's id, unique per command; use it as the idempotency key downstream. */
  readonly id: string;
  /** When the publisher issued the command, epoch milliseconds. */
  readonly issuedAt: number;
  /** When the bridge received it, epoch milliseconds. */
  readonly receivedAt: number;
  /** Aborted when the bridge closes; pass it on to whatever the handler awaits. */
  readonly signal: AbortSignal;
}

/** How a command ended: a JSON value for the publisher, or a Keel error. */
export type CommandOutcome =
  | { readonly ok: true; readonly value: JsonValue }
  | { readonly ok: false; readonly error: KeelError };

/**
 * Acts on one valid, fresh, first-seen command. The bridge calls it one command at a time,
 * in arrival order. Throwing is the same as returning `{ ok: false, error }`: a KeelError keeps
 * its code, anything else becomes `KEEL_INTERNAL` without its message or stack.
 *
 * @example
 * ```ts
 * const onCommand: CommandHandler<RobotIntent> = async (intent, meta) => ({
 *   ok: true,
 *   value: await gate.call(identity, { kind: 'hal.intent', resource: robotId, params: intent }, { signal: meta.signal }),
 * });
 * ```
 */
export type CommandHandler<Command> = (
  command: Command,
  meta: CommandMeta,
) => Promise<CommandOutcome>;
