-- Keel's embedded schema, version 1. Forward-only: never edit this file once released;
-- add 0002_*.sql instead (the migrator refuses a changed applied migration).

CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT NOT NULL,
  agent_id TEXT,
  run_id TEXT,
  subject TEXT,
  outcome TEXT,
  code TEXT,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_by_agent ON audit_log (agent_id, seq);
CREATE INDEX audit_log_by_kind ON audit_log (kind, seq);

-- The audit log is append-only at the database level too.
CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  trust_level TEXT NOT NULL CHECK (trust_level IN ('untrusted', 'standard', 'trusted')),
  state TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  status TEXT NOT NULL,
  task TEXT NOT NULL,
  result TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX runs_by_agent ON runs (agent_id, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);

CREATE TABLE run_journal (
  run_id TEXT NOT NULL REFERENCES runs (id),
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  intent_digest TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error')),
  result TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  run_id TEXT,
  seq INTEGER,
  kind TEXT NOT NULL,
  resource TEXT NOT NULL,
  intent_digest TEXT NOT NULL,
  summary TEXT NOT NULL,
  reason TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
  requested_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  decided_at INTEGER,
  decided_by TEXT,
  note TEXT,
  consumed_at INTEGER
) STRICT;
CREATE INDEX approvals_by_state ON approvals (state, expires_at);
CREATE INDEX approvals_by_agent_digest ON approvals (agent_id, intent_digest, state);

CREATE TABLE usage_records (
  id TEXT PRIMARY KEY,
  ts INTEGER NOT NULL,
  agent_id TEXT NOT NULL,
  run_id TEXT,
  kind TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  input_tokens INTEGER NOT NULL CHECK (input_tokens >= 0),
  output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
  cost_micros INTEGER CHECK (cost_micros IS NULL OR cost_micros >= 0)
) STRICT;
CREATE INDEX usage_by_agent ON usage_records (agent_id, ts);
CREATE INDEX usage_by_run ON usage_records (run_id, ts);

CREATE TABLE budgets (
  scope TEXT PRIMARY KEY,
  limit_tokens INTEGER,
  limit_cost_micros INTEGER,
  limit_calls INTEGER,
  limit_wall_ms INTEGER,
  spent_tokens INTEGER NOT NULL DEFAULT 0,
  spent_cost_micros INTEGER NOT NULL DEFAULT 0,
  spent_calls INTEGER NOT NULL DEFAULT 0,
  spent_wall_ms INTEGER NOT NULL DEFAULT 0,
  reserved_tokens INTEGER NOT NULL DEFAULT 0,
  reserved_cost_micros INTEGER NOT NULL DEFAULT 0,
  reserved_calls INTEGER NOT NULL DEFAULT 0,
  reserved_wall_ms INTEGER NOT NULL DEFAULT 0,
  tripped_at INTEGER,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE budget_reservations (
  id TEXT PRIMARY KEY,
  scopes TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  cost_micros INTEGER NOT NULL,
  calls INTEGER NOT NULL,
  wall_ms INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE key_values (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE capability_grants (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  grant_json TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  issued_by TEXT NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  revoked_by TEXT
) STRICT;
CREATE INDEX capability_grants_by_agent ON capability_grants (agent_id);
