-- Rotation intervals shorter than a day, and leases: a named, expiring claim
-- that exactly one process holds at a time (the rotation scheduler's).
ALTER TABLE secrets ADD COLUMN rotation_seconds INTEGER;

CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
