import { KeelError } from '../../../errors/keel-error.ts';
import type {
  AgentRecord,
  AgentState,
  AgentStateChange,
  TrustLevel,
} from '../../ports/agent-store.ts';
import type { JsonObject } from '../../ports/json-value.ts';
import {
  fromJsonColumn,
  type HandlersFor,
  type OperationContext,
  type Row,
  toJsonColumn,
} from './operation-context.ts';

const COLUMNS = 'id, name, trust_level, state, metadata, created_at, updated_at';

function toRecord(row: Row): AgentRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    trustLevel: String(row.trust_level) as TrustLevel,
    state: String(row.state) as AgentState,
    metadata: fromJsonColumn<JsonObject>(row.metadata),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function byId(context: OperationContext, id: string): AgentRecord | undefined {
  const row = context.statements.get(`SELECT ${COLUMNS} FROM agents WHERE id = ?`).get(id) as
    | Row
    | undefined;
  return row === undefined ? undefined : toRecord(row);
}

/** The agent `id`, or `KEEL_NOT_FOUND`. */
export function required(context: OperationContext, id: string): AgentRecord {
  const agent = byId(context, id);
  if (agent === undefined) throw new KeelError('KEEL_NOT_FOUND', `no agent ${id}`);
  return agent;
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const agentOperations: HandlersFor<'agents'> = {
  'agents.create': (context, agent) => {
    const existing = context.statements
      .get('SELECT id FROM agents WHERE id = ? OR name = ?')
      .get(agent.id, agent.name);
    if (existing !== undefined) {
      throw new KeelError(
        'KEEL_CONFLICT',
        `an agent with id ${agent.id} or name ${agent.name} exists`,
      );
    }
    context.statements
      .get(`INSERT INTO agents (${COLUMNS}) VALUES (?, ?, ?, 'created', ?, ?, ?)`)
      .run(
        agent.id,
        agent.name,
        agent.trustLevel,
        toJsonColumn(agent.metadata ?? {}, 'metadata'),
        agent.now,
        agent.now,
      );
    return required(context, agent.id);
  },
  'agents.get': (context, id) => byId(context, id),
  'agents.getByName': (context, name) => {
    const row = context.statements.get(`SELECT ${COLUMNS} FROM agents WHERE name = ?`).get(name) as
      | Row
      | undefined;
    return row === undefined ? undefined : toRecord(row);
  },
  'agents.list': (context) =>
    (context.statements.get(`SELECT ${COLUMNS} FROM agents ORDER BY name`).all() as Row[]).map(
      toRecord,
    ),
  'agents.updateState': (context, id, state, now, expected, reason) => {
    const current = required(context, id);
    if (expected !== undefined && current.state !== expected) {
      throw new KeelError('KEEL_CONFLICT', `agent ${id} is ${current.state}, not ${expected}`, {
        details: { agentId: id, state: current.state, expected },
      });
    }
    context.statements
      .get('UPDATE agents SET state = ?, updated_at = ? WHERE id = ?')
      .run(state, now, id);
    context.statements
      .get(
        'INSERT INTO agent_state_history (agent_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(id, current.state, state, (reason ?? '').slice(0, 500), now);
    return required(context, id);
  },
  'agents.history': (context, id, limit) => {
    const rows = context.statements
      .get(
        'SELECT agent_id, from_state, to_state, reason, at FROM agent_state_history WHERE agent_id = ? ORDER BY seq DESC LIMIT ?',
      )
      .all(id, Math.max(1, Math.min(1000, Math.floor(limit)))) as Row[];
    return rows.reverse().map(
      (row): AgentStateChange => ({
        agentId: String(row.agent_id),
        from: String(row.from_state) as AgentState,
        to: String(row.to_state) as AgentState,
        reason: String(row.reason),
        at: Number(row.at),
      }),
    );
  },
  'agents.setTrustLevel': (context, id, trustLevel, now) => {
    required(context, id);
    context.statements
      .get('UPDATE agents SET trust_level = ?, updated_at = ? WHERE id = ?')
      .run(trustLevel, now, id);
    return required(context, id);
  },
};
