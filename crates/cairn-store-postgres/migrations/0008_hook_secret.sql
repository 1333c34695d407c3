-- The secret whose value signs a rotation hook's requests (a name, never a value).
ALTER TABLE secrets ADD COLUMN hook_secret TEXT;
