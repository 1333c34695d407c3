-- Webhook subscriptions (the signing secret sealed like a secret version,
-- never in clear), the dispatcher's cursor into the audit log, and the
-- delivery log.
CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY NOT NULL,
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,            -- JSON array of event types
    app          TEXT,                     -- NULL: every app
    env          TEXT,                     -- NULL: every environment
    description  TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    created_seq  INTEGER NOT NULL,         -- audit seq of the creation record
    deleted_at   TEXT,
    deleted_seq  INTEGER
);

-- Audit records up to audit_seq have been turned into deliveries. Starts at
-- the current end of the log: nothing before webhooks existed is replayed.
CREATE TABLE webhook_cursor (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    audit_seq  INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, audit_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit;

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id),
    audit_seq        INTEGER NOT NULL,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,        -- pending | delivered | failed | cancelled
    attempts         INTEGER NOT NULL,
    attempt_log      TEXT NOT NULL,        -- JSON array of attempts
    next_attempt_at  TEXT,
    created_at       TEXT NOT NULL,
    last_attempt_at  TEXT,
    delivered_at     TEXT,
    UNIQUE (webhook_id, audit_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
