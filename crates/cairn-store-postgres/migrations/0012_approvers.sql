-- Environment policy: who may approve changes that need its approval
-- (DESIGN.md §7), a JSON array of `role:NAME` / `user:NAME`; '[]' = whoever
-- may write there.
ALTER TABLE environments ADD COLUMN approvers TEXT NOT NULL DEFAULT '[]';
