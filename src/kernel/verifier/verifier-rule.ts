import type { ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { AgentRecord } from '../../platform/storage/ports/agent-store.ts';
import type { SyscallIntent } from '../gate/syscall.ts';

export interface VerifierContext {
  readonly agent: AgentRecord;
  readonly runId: string | undefined;
  readonly now: number;
}

export type VerifierVerdict =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: string;
      /** Default `KEEL_POLICY_VIOLATION`. */
      readonly code?: ErrorCode;
      readonly details?: Readonly<Record<string, unknown>>;
    };

/**
 * A safety or policy invariant checked at step 3 of the gate, after capabilities: a speed
 * cap, a workspace box, a path or command policy. Rules run in order; the first refusal wins.
 *
 * @example
 * ```ts
 * const noNight: VerifierRule = {
 *   id: 'no-night-shell',
 *   description: 'no shell between 22:00 and 06:00 UTC',
 *   appliesTo: (intent) => intent.kind === 'tool.call' && intent.resource === 'shell',
 *   check: (_intent, context) => (new Date(context.now).getUTCHours() >= 22 ? { ok: false, reason: 'night' } : { ok: true }),
 * };
 * ```
 */
export interface VerifierRule {
  readonly id: string;
  readonly description: string;
  appliesTo(intent: SyscallIntent): boolean;
  check(
    intent: SyscallIntent,
    context: VerifierContext,
  ): VerifierVerdict | Promise<VerifierVerdict>;
}

/**
 * The verdict of a rule that lets the intent pass.
 */
export const ALLOW: VerifierVerdict = Object.freeze({ ok: true });

/**
 * The ordered list of rules; rules are registered at boot by the composition root.
 *
 * @example
 * ```ts
 * const verifier = new Verifier();
 * verifier.register(pathPolicyRule);
 * await verifier.check(intent, { agent, runId, now });
 * ```
 */
export class Verifier {
  readonly #rules: VerifierRule[] = [];

  register(rule: VerifierRule): void {
    if (this.#rules.some((existing) => existing.id === rule.id)) {
      throw new KeelError('KEEL_CONFLICT', `a verifier rule ${rule.id} is already registered`);
    }
    this.#rules.push(rule);
  }

  /**
   * Runs every applicable rule in order; returns the first refusal with the rule's id, or
   * `undefined` when all pass. A rule that throws refuses (fail closed).
   */
  async check(
    intent: SyscallIntent,
    context: VerifierContext,
  ): Promise<
    | { readonly ruleId: string; readonly verdict: Exclude<VerifierVerdict, { ok: true }> }
    | undefined
  > {
    for (const rule of this.#rules) {
      if (!rule.appliesTo(intent)) continue;
      let verdict: VerifierVerdict;
      try {
        verdict = await rule.check(intent, context);
      } catch (error) {
        verdict = {
          ok: false,
          reason: `verifier rule ${rule.id} failed: ${error instanceof Error ? error.message : String(error)}`,
        };
      }
      if (!verdict.ok) return { ruleId: rule.id, verdict };
    }
    return undefined;
  }
}
