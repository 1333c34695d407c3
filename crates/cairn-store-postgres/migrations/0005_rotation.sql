-- Rotation intervals shorter than a day, and leases: a named, expiring claim
-- that exactly one replica holds at a time (the rotation scheduler's).
ALTER TABLE secrets ADD COLUMN rotation_seconds BIGINT;

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
