-- Edit-then-approve: the top-level parameters an operator replaced when approving a call.
-- The call runs with them (after its capability and rules are checked again); the journal
-- keeps the agent's own intent digest, so a replay still matches.
ALTER TABLE approvals ADD COLUMN param_edits TEXT;
