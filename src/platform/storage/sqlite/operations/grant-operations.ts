import { KeelError } from '../../../errors/keel-error.ts';
import type { NewGrant, StoredGrant } from '../../ports/grant-store.ts';
import type { JsonObject } from '../../ports/json-value.ts';
import { required } from './agent-operations.ts';
import { keyValueOperations } from './key-value-operations.ts';
import {
  fromJsonColumn,
  type HandlersFor,
  nullableNumber,
  nullableString,
  type OperationContext,
  type Row,
  toJsonColumn,
} from './operation-context.ts';

/** An agent's grants neither revoked nor expired at a time (parameters: agent id, now). */
const ACTIVE = 'agent_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)';

const COLUMNS =
  'id, agent_id, grant_json, issued_at, issued_by, expires_at, revoked_at, revoked_by';

function toGrant(row: Row): StoredGrant {
  return {
    id: String(row.id),
    agentId: String(row.agent_id),
    grant: fromJsonColumn<JsonObject>(row.grant_json),
    issuedAt: Number(row.issued_at),
    issuedBy: String(row.issued_by),
    expiresAt: nullableNumber(row.expires_at),
    revokedAt: nullableNumber(row.revoked_at),
    revokedBy: nullableString(row.revoked_by),
  };
}

function byId(context: OperationContext, id: string): StoredGrant | undefined {
  const row = context.statements
    .get(`SELECT ${COLUMNS} FROM capability_grants WHERE id = ?`)
    .get(id) as Row | undefined;
  return row === undefined ? undefined : toGrant(row);
}

function insert(context: OperationContext, grant: NewGrant): StoredGrant {
  if (
    context.statements.get('SELECT 1 FROM agents WHERE id = ?').get(grant.agentId) === undefined
  ) {
    throw new KeelError('KEEL_NOT_FOUND', `no agent ${grant.agentId}`);
  }
  if (byId(context, grant.id) !== undefined) {
    throw new KeelError('KEEL_CONFLICT', `grant ${grant.id} exists`);
  }
  context.statements
    .get(`INSERT INTO capability_grants (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)`)
    .run(
      grant.id,
      grant.agentId,
      toJsonColumn(grant.grant, 'grant'),
      grant.issuedAt,
      grant.issuedBy,
      grant.expiresAt,
    );
  const stored = byId(context, grant.id);
  if (stored === undefined) throw new KeelError('KEEL_INTERNAL', `grant ${grant.id} vanished`);
  return stored;
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const grantOperations: HandlersFor<'grants'> = {
  'grants.add': (context, grant) => insert(context, grant),
  'grants.get': (context, id) => byId(context, id),
  'grants.revoke': (context, id, revokedBy, now) => {
    const current = byId(context, id);
    if (current === undefined) throw new KeelError('KEEL_NOT_FOUND', `no grant ${id}`);
    if (current.revokedAt !== null) {
      throw new KeelError('KEEL_CONFLICT', `grant ${id} was already revoked`);
    }
    context.statements
      .get('UPDATE capability_grants SET revoked_at = ?, revoked_by = ? WHERE id = ?')
      .run(now, revokedBy, id);
    return { ...current, revokedAt: now, revokedBy };
  },
  'grants.listActive': (context, agentId, now) =>
    (
      context.statements
        .get(`SELECT ${COLUMNS} FROM capability_grants WHERE ${ACTIVE} ORDER BY issued_at, id`)
        .all(agentId, now) as Row[]
    ).map(toGrant),
  'grants.listAll': (context, agentId) =>
    (
      context.statements
        .get(`SELECT ${COLUMNS} FROM capability_grants WHERE agent_id = ? ORDER BY issued_at, id`)
        .all(agentId) as Row[]
    ).map(toGrant),
  'grants.replace': (context, agentId, grants, revokedBy, now, deployment) => {
    // One request runs in one savepoint: a throw below rolls back everything before it.
    required(context, agentId);
    if (deployment !== undefined) {
      context.statements
        .get('UPDATE agents SET metadata = ?, trust_level = ?, updated_at = ? WHERE id = ?')
        .run(toJsonColumn(deployment.metadata, 'metadata'), deployment.trustLevel, now, agentId);
    }
    const revoked = (
      context.statements
        .get(`SELECT ${COLUMNS} FROM capability_grants WHERE ${ACTIVE} ORDER BY issued_at, id`)
        .all(agentId, now) as Row[]
    ).map((row) => ({ ...toGrant(row), revokedAt: now, revokedBy }));
    context.statements
      .get(`UPDATE capability_grants SET revoked_at = ?, revoked_by = ? WHERE ${ACTIVE}`)
      .run(now, revokedBy, agentId, now);
    const added = grants.map((grant) => {
      if (grant.agentId !== agentId) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `grant ${grant.id} is for agent ${grant.agentId}, not ${agentId}`,
        );
      }
      return insert(context, grant);
    });
    if (deployment?.setting !== undefined) {
      const { key, value } = deployment.setting;
      keyValueOperations['keyValues.set'](context, key, value, now);
    }
    return deployment === undefined
      ? { revoked, added }
      : { revoked, added, agent: required(context, agentId) };
  },
};
