-- Identity and the tamper-evident audit chain.

-- Every audit record's HMAC (hex); the signed head of the chain lives in meta.
ALTER TABLE audit ADD COLUMN mac TEXT NOT NULL DEFAULT '';
ALTER TABLE meta ADD COLUMN audit_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE meta ADD COLUMN audit_mac TEXT NOT NULL DEFAULT '';
ALTER TABLE meta ADD COLUMN audit_sig TEXT NOT NULL DEFAULT '';

-- A login token acts for its user (the user's bindings apply).
ALTER TABLE tokens ADD COLUMN user_name TEXT;

-- Users log in with a password, stored only as an Argon2id PHC string.
CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    bindings      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    disabled      BOOLEAN NOT NULL,
    revision      BIGINT NOT NULL
);
