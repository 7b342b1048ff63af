-- The agent runtime: every lifecycle transition of an agent is kept (written in the same
-- transaction as the state change), and runs carry what the scheduler and the supervisor
-- need: priority, how many times a worker started them, their error, and where they came from.
CREATE TABLE agent_state_history (
  seq INTEGER PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX agent_state_history_by_agent ON agent_state_history (agent_id, seq);

ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN error TEXT;
ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
