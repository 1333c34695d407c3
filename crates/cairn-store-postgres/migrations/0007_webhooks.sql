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
    wrapped_key  BYTEA NOT NULL,
    ciphertext   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revision     BIGINT NOT NULL,
    created_seq  BIGINT NOT NULL,         -- audit seq of the creation record
    deleted_at   TIMESTAMPTZ,
    deleted_seq  BIGINT
);

-- Audit records up to audit_seq have been turned into deliveries. Starts at
-- the current end of the log: nothing before webhooks existed is replayed.
CREATE TABLE webhook_cursor (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    audit_seq  BIGINT NOT NULL
);
INSERT INTO webhook_cursor (id, audit_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit;

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id),
    audit_seq        BIGINT NOT NULL,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,        -- pending | delivered | failed | cancelled
    attempts         INTEGER NOT NULL,
    attempt_log      TEXT NOT NULL,        -- JSON array of attempts
    next_attempt_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    last_attempt_at  TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (webhook_id, audit_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
