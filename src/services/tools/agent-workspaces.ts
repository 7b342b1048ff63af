import { KeelError } from '../../platform/errors/keel-error.ts';
import { Workspace } from './files/workspace.ts';

/** An agent's workspace as its manifest gives it. */
export interface WorkspaceAssignment {
  /** Absolute folder (a git repository for the coding agent). */
  readonly path: string;
  /** The project's verification command, e.g. `npm test`. */
  readonly verify?: string;
}

/** An opened workspace with its settings. */
export interface AgentWorkspace {
  readonly workspace: Workspace;
  readonly verify: string | undefined;
}

/**
 * Which workspace each agent's tools work in. The runtime assigns one when it deploys an agent
 * whose manifest names one; a file, shell or git tool called by an agent without one is
 * refused.
 *
 * @example
 * ```ts
 * await workspaces.assign('agent_1', { path: '/srv/repos/app', verify: 'npm test' });
 * const { workspace } = workspaces.of('agent_1');
 * ```
 */
export class AgentWorkspaces {
  readonly #byAgent = new Map<string, AgentWorkspace>();

  async assign(agentId: string, assignment: WorkspaceAssignment | undefined): Promise<void> {
    if (assignment === undefined) {
      this.#byAgent.delete(agentId);
      return;
    }
    const workspace = await Workspace.open(assignment.path);
    this.#byAgent.set(agentId, { workspace, verify: assignment.verify });
  }

  /** The agent's workspace; `KEEL_POLICY_VIOLATION` when its manifest gave none. */
  of(agentId: string): AgentWorkspace {
    const found = this.#byAgent.get(agentId);
    if (found === undefined) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        'this agent has no workspace; give it one in its manifest (workspace.path)',
        { details: { rule: 'no-workspace', agentId } },
      );
    }
    return found;
  }
}
