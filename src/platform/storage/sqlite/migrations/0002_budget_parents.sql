-- A child run's budget names its parent's: every reservation on the child is also checked
-- against and charged to the parent (and its ancestors), so a child can never spend more
-- than its parent had left.
ALTER TABLE budgets ADD COLUMN parent_scope TEXT REFERENCES budgets (scope);
