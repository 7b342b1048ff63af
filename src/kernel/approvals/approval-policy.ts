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

/** What a requirement source is asked about: who calls, in which run, with which intent. */
export interface ApprovalQuestion {
  readonly agentId: string;
  readonly trustLevel: TrustLevel;
  readonly runId: string | undefined;
  readonly intent: { readonly kind: string; readonly resource: string };
}

/**
 * A service's own approval rules (a tool that always needs a human, content-tainted runs):
 * why approval is needed, or `undefined`. Registered at boot by the composition root.
 */
export type ApprovalRequirementSource = (
  question: ApprovalQuestion,
) => string | undefined | Promise<string | undefined>;

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
  /** Services' sources by the syscall kind they judge. */
  readonly #sources = new Map<string, ApprovalRequirementSource[]>();

  constructor(rules: readonly ApprovalRule[]) {
    this.#rules = rules.map((rule) => ({
      rule,
      matchesKind: compileGlob(rule.kind),
      matchesResource: compileGlob(rule.resource),
    }));
  }

  /**
   * Whether any rule or source could ask for approval of this kind of call: the gate skips
   * the step (and its awaits) for every other kind, such as `llm.chat` on a node whose only
   * source judges tool calls.
   */
  concerns(kind: string): boolean {
    return this.#rules.length > 0 || this.#sources.has(kind);
  }

  /** Adds a service's rules for one syscall kind, asked after the configured ones. */
  addSource(kind: string, source: ApprovalRequirementSource): void {
    const sources = this.#sources.get(kind) ?? [];
    sources.push(source);
    this.#sources.set(kind, sources);
  }

  /** Why approval is needed for this call, from the configured rules then the sources. */
  async requirementFor(question: ApprovalQuestion): Promise<string | undefined> {
    const configured = this.requirement(question.trustLevel, question.intent);
    if (configured !== undefined) return configured;
    for (const source of this.#sources.get(question.intent.kind) ?? []) {
      const reason = await source(question);
      if (reason !== undefined) return reason;
    }
    return undefined;
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
