import type {
  ApprovalQuestion,
  ApprovalRequirementSource,
} from '../../kernel/approvals/approval-policy.ts';
import type { KeyValueStore } from '../../platform/storage/ports/key-value-store.ts';
import type { ToolRegistry } from './tool-registry.ts';

const TAINT_PREFIX = 'tools.taint.';

/**
 * Remembers, durably, which runs have read untrusted content (a web page, a file from outside
 * the workspace). The mark is written before the call's result is journaled, so a run that
 * resumes after a crash is still marked.
 *
 * @example
 * ```ts
 * await taint.mark('run_1', 'fetch_url');
 * await taint.source('run_1'); // 'fetch_url'
 * ```
 */
export class RunTaint {
  readonly #store: KeyValueStore;
  readonly #now: () => number;
  readonly #known = new Map<string, string>();
  /**
   * Runs whose mark may be in storage: marked here, or found there by {@link forgetEnded}.
   * Once that listing is done, a run not in it has no mark, and neither asking about it nor
   * forgetting it needs storage.
   */
  readonly #stored = new Set<string>();
  #listed = false;

  constructor(store: KeyValueStore, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async mark(runId: string, tool: string): Promise<void> {
    if (this.#known.has(runId)) return;
    this.#stored.add(runId);
    await this.#store.set(`${TAINT_PREFIX}${runId}`, tool, this.#now());
    this.#known.set(runId, tool);
  }

  /** Forgets an ended run's mark: nothing of it can call a tool again. */
  async forget(runId: string): Promise<void> {
    this.#known.delete(runId);
    if (this.#listed && !this.#stored.has(runId)) return;
    this.#stored.delete(runId);
    await this.#store.delete(`${TAINT_PREFIX}${runId}`);
  }

  /**
   * Forgets the marks of runs that ended while nobody listened (the node was down); resolves
   * with how many. Run at start; until it has listed the stored marks, every question about a
   * run reads storage.
   */
  async forgetEnded(ended: (runId: string) => Promise<boolean>): Promise<number> {
    const listed = await this.#store.list(TAINT_PREFIX);
    const runIds = listed.map(([key]) => key.slice(TAINT_PREFIX.length));
    for (const runId of runIds) this.#stored.add(runId);
    this.#listed = true;
    let forgotten = 0;
    for (const runId of runIds) {
      if (await ended(runId)) {
        await this.forget(runId);
        forgotten += 1;
      }
    }
    return forgotten;
  }

  /** The tool whose content tainted the run, or `undefined`. */
  async source(runId: string): Promise<string | undefined> {
    const known = this.#known.get(runId);
    if (known !== undefined) return known;
    if (this.#listed && !this.#stored.has(runId)) return undefined;
    const stored = await this.#store.get(`${TAINT_PREFIX}${runId}`);
    if (typeof stored !== 'string') return undefined;
    this.#known.set(runId, stored);
    return stored;
  }
}

/**
 * The tools' approval rules for `tool.call`, asked by the gate after the configured ones:
 *
 * - a `supervised` agent (trust `untrusted`) needs approval for every call with side effects;
 * - a tool marked `requiresApproval` needs it for every agent below `autonomous`;
 * - once a run has read untrusted content, every later call with side effects in that run
 *   needs approval, whatever the trust: content never triggers a tool by itself.
 *
 * @example
 * ```ts
 * kernel.approvalPolicy.addSource('tool.call', toolApprovalSource(tools, taint));
 * ```
 */
export function toolApprovalSource(
  tools: ToolRegistry,
  taint: RunTaint,
): ApprovalRequirementSource {
  return async (question: ApprovalQuestion) => {
    const tool = tools.get(question.intent.resource);
    if (tool === undefined) return undefined;
    if (tool.sideEffects === true && question.trustLevel === 'untrusted') {
      return `${tool.name} changes things, and this agent is supervised`;
    }
    if (tool.requiresApproval === true && question.trustLevel !== 'trusted') {
      return `${tool.name} always needs a human for agents that are not autonomous`;
    }
    if (tool.sideEffects === true && question.runId !== undefined) {
      const source = await taint.source(question.runId);
      if (source !== undefined) {
        return `this run has read untrusted content (${source}); ${tool.name} changes things, so a human decides`;
      }
    }
    return undefined;
  };
}
