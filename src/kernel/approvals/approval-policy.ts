import type { TrustLevel } from '../../platform/storage/ports/agent-store.ts';
import { compileGlob, type Matcher } from '../capabilities/pattern-matchers.ts';
import { describeIntent } from '../gate/describe-intent.ts';

/** One rule: intents of this kind and resource need a human when the agent has these trust levels. */
export interface ApprovalRule {
  readonly kind: string;
  readonly resource: string;
  readonly trustLevels: readonly TrustLevel[];
  readonly reason: string | null;
}

interface CompiledRule {
  readonly rule: ApprovalRule;
  readonly matchesKind: Matcher;
  readonly matchesResource: Matcher;
}

/**
 * Decides which intents need a human approval, from ordered rules; the first rule that matches
 * the intent's kind, resource and the agent's trust level wins.
 *
 * @example
 * ```ts
 * const policy = new ApprovalPolicy([{ kind: 'tool.call', resource: 'shell', trustLevels: ['untrusted', 'standard'], reason: null }]);
 * policy.requirement('standard', { kind: 'tool.call', resource: 'shell' }); // 'tool.call shell needs approval …'
 * ```
 */
export class ApprovalPolicy {
  readonly #rules: readonly CompiledRule[];

  constructor(rules: readonly ApprovalRule[]) {
    this.#rules = rules.map((rule) => ({
      rule,
      matchesKind: compileGlob(rule.kind),
      matchesResource: compileGlob(rule.resource),
    }));
  }

  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** Why approval is needed, or `undefined` when it is not. */
  requirement(
    trustLevel: TrustLevel,
    intent: { readonly kind: string; readonly resource: string },
  ): string | undefined {
    for (const { rule, matchesKind, matchesResource } of this.#rules) {
      if (!rule.trustLevels.includes(trustLevel)) continue;
      if (!matchesKind(intent.kind) || !matchesResource(intent.resource)) continue;
      return rule.reason ?? `${describeIntent(intent)} needs approval for ${trustLevel} agents`;
    }
    return undefined;
  }
}
