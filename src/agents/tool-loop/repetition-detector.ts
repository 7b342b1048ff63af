import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import type { ChatToolCall } from '../../runtime/worker/agent-program.ts';

/** What the model keeps repeating: one tool call (name and arguments), or one answer. */
export type Repetition =
  | {
      readonly kind: 'tool-call';
      readonly name: string;
      readonly arguments: JsonObject;
      readonly count: number;
    }
  | { readonly kind: 'text'; readonly text: string; readonly count: number };

/**
 * What the loop does after a turn: go on, warn the model that it is repeating itself (the
 * first time the limit is reached), or stop the run as stuck (any later time).
 */
export type RepetitionVerdict =
  | { readonly kind: 'ok' }
  | { readonly kind: 'warn'; readonly repetition: Repetition }
  | { readonly kind: 'stuck'; readonly repetition: Repetition };

/** A model turn as the detector sees it. */
export interface ObservedTurn {
  readonly text: string;
  readonly toolCalls: readonly Pick<ChatToolCall, 'name' | 'arguments'>[];
}

/**
 * Detects a stuck loop: the same tool call (same name, same arguments whatever their key
 * order) `repeatLimit` times in a row, or the same answer without tool calls `repeatLimit`
 * turns in a row. The first turn that reaches the limit gets a `warn` verdict; any later turn
 * that reaches it (the same repetition going on, or a new one) gets `stuck`.
 *
 * @example
 * ```ts
 * const detector = new RepetitionDetector(3);
 * detector.observe({ text: '', toolCalls: [{ name: 'search', arguments: { q: 'x' } }] }); // ok
 * detector.observe({ text: '', toolCalls: [{ name: 'search', arguments: { q: 'x' } }] }); // ok
 * detector.observe({ text: '', toolCalls: [{ name: 'search', arguments: { q: 'x' } }] }); // warn
 * detector.observe({ text: '', toolCalls: [{ name: 'search', arguments: { q: 'x' } }] }); // stuck
 * ```
 */
export class RepetitionDetector {
  readonly #limit: number;
  #lastSignature: string | undefined;
  #streak = 0;
  #warned = false;

  constructor(repeatLimit: number) {
    if (!Number.isInteger(repeatLimit) || repeatLimit < 2) {
      throw new RangeError('repeatLimit must be an integer of at least 2');
    }
    this.#limit = repeatLimit;
  }

  /** Records a turn's tool calls in order, or its text when it made none, and judges it. */
  observe(turn: ObservedTurn): RepetitionVerdict {
    let repetition: Repetition | undefined;
    if (turn.toolCalls.length === 0) {
      if (this.#see(`text\n${turn.text}`)) {
        repetition = { kind: 'text', text: turn.text, count: this.#streak };
      }
    } else {
      for (const call of turn.toolCalls) {
        const signature = `tool\n${call.name}\n${canonicalJson(call.arguments)}`;
        if (this.#see(signature)) {
          repetition = {
            kind: 'tool-call',
            name: call.name,
            arguments: call.arguments,
            count: this.#streak,
          };
        }
      }
    }
    if (repetition === undefined) return { kind: 'ok' };
    if (this.#warned) return { kind: 'stuck', repetition };
    this.#warned = true;
    return { kind: 'warn', repetition };
  }

  /** Counts the signature into the streak; whether the streak has reached the limit. */
  #see(signature: string): boolean {
    this.#streak = signature === this.#lastSignature ? this.#streak + 1 : 1;
    this.#lastSignature = signature;
    return this.#streak >= this.#limit;
  }
}

/**
 * The message that tells the model it is repeating itself and must change approach.
 *
 * @example
 * ```ts
 * repetitionWarning({ kind: 'text', text: 'I will check.', count: 3 });
 * ```
 */
export function repetitionWarning(repetition: Repetition): string {
  const what =
    repetition.kind === 'tool-call'
      ? `called ${repetition.name} with the same arguments ${repetition.count} times in a row`
      : `given the same answer ${repetition.count} times in a row`;
  return (
    `You have ${what}. Repeating it will not get a different result. Change your approach: ` +
    'use different arguments or another tool, or give your final answer. If you repeat ' +
    'yourself again, the run will be stopped.'
  );
}
