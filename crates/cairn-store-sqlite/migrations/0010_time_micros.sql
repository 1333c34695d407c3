-- Timestamps become integers: microseconds since the Unix epoch (UTC), as on PostgreSQL.
-- Every table with a timestamp is rebuilt (SQLite cannot change a column's type): create the
-- new table, copy the rows converting each timestamp, drop the old table, rename the new one.
-- The runner applies migrations with foreign keys off and checks them before committing.
--
-- Until now timestamps were fixed-width UTC text, YYYY-MM-DDTHH:MM:SS.ffffffZ (the only form
-- this store ever wrote). The copy converts exactly that form; anything else aborts the
-- migration (the CHECK below) rather than being guessed at.

CREATE TEMP TABLE _cairn_time_check (
    value TEXT,
    CHECK (value IS NULL OR value GLOB
        '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
);
INSERT INTO _cairn_time_check (value)
          SELECT created_at FROM apps
UNION ALL SELECT created_at FROM environments
UNION ALL SELECT created_at FROM schemas
UNION ALL SELECT created_at FROM entry_versions
UNION ALL SELECT at FROM audit
UNION ALL SELECT created_at FROM tokens
UNION ALL SELECT expires_at FROM tokens
UNION ALL SELECT revoked_at FROM tokens
UNION ALL SELECT created_at FROM users
UNION ALL SELECT last_at FROM flag_counts
UNION ALL SELECT created_at FROM secrets
UNION ALL SELECT updated_at FROM secrets
UNION ALL SELECT created_at FROM secret_versions
UNION ALL SELECT expires_at FROM leases
UNION ALL SELECT reported_at FROM applied
UNION ALL SELECT created_at FROM webhooks
UNION ALL SELECT deleted_at FROM webhooks
UNION ALL SELECT next_attempt_at FROM webhook_deliveries
UNION ALL SELECT created_at FROM webhook_deliveries
UNION ALL SELECT last_attempt_at FROM webhook_deliveries
UNION ALL SELECT delivered_at FROM webhook_deliveries;
DROP TABLE _cairn_time_check;

-- The conversion, written out per column below (NULL stays NULL):
--   CAST(strftime('%s', substr(t, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(t, 21, 6) AS INTEGER)
-- whole seconds since the epoch (negative before 1970) plus the microseconds.

CREATE TABLE apps_new (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revision    INTEGER NOT NULL
);
INSERT INTO apps_new (name, description, created_at, revision)
SELECT name, description,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       revision
FROM apps;
DROP TABLE apps;
ALTER TABLE apps_new RENAME TO apps;

CREATE TABLE environments_new (
    name               TEXT PRIMARY KEY NOT NULL,
    description        TEXT NOT NULL,
    protected          INTEGER NOT NULL,
    required_approvals INTEGER NOT NULL,
    auto_approve       INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    revision           INTEGER NOT NULL,
    strict_flags       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO environments_new (name, description, protected, required_approvals, auto_approve,
                              created_at, revision, strict_flags)
SELECT name, description, protected, required_approvals, auto_approve,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       revision, strict_flags
FROM environments;
DROP TABLE environments;
ALTER TABLE environments_new RENAME TO environments;

CREATE TABLE schemas_new (
    app        TEXT NOT NULL,
    pattern    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    schema     TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app, pattern, version)
);
INSERT INTO schemas_new (app, pattern, version, schema, revision, actor, message, created_at)
SELECT app, pattern, version, schema, revision, actor, message,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER)
FROM schemas;
DROP TABLE schemas;
ALTER TABLE schemas_new RENAME TO schemas;

-- entries references entry_versions by name: it points at the new table once renamed.
CREATE TABLE entry_versions_new (
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    merge      TEXT NOT NULL,
    value      TEXT,
    checksum   TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app, env, key, version)
);
INSERT INTO entry_versions_new (app, env, key, version, kind, merge, value, checksum, revision,
                                position, actor, message, created_at)
SELECT app, env, key, version, kind, merge, value, checksum, revision, position, actor, message,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER)
FROM entry_versions;
DROP TABLE entry_versions;
ALTER TABLE entry_versions_new RENAME TO entry_versions;
CREATE INDEX entry_versions_by_revision ON entry_versions (revision, position);

CREATE TABLE audit_new (
    seq          INTEGER PRIMARY KEY,
    revision     INTEGER,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    app          TEXT,
    env          TEXT,
    key          TEXT,
    from_version INTEGER,
    to_version   INTEGER,
    message      TEXT NOT NULL,
    client_ip    TEXT,
    user_agent   TEXT,
    replica      TEXT,
    detail       TEXT NOT NULL,
    mac          TEXT NOT NULL DEFAULT ''
);
INSERT INTO audit_new (seq, revision, at, actor, action, app, env, key, from_version, to_version,
                       message, client_ip, user_agent, replica, detail, mac)
SELECT seq, revision,
       CAST(strftime('%s', substr(at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(at, 21, 6) AS INTEGER),
       actor, action, app, env, key, from_version, to_version, message, client_ip, user_agent,
       replica, detail, mac
FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_by_key ON audit (key);
CREATE INDEX audit_by_at ON audit (at);

CREATE TABLE tokens_new (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    revision   INTEGER NOT NULL,
    user_name  TEXT
);
INSERT INTO tokens_new (id, name, hash, role, app, env, created_at, expires_at, revoked_at,
                        revision, user_name)
SELECT id, name, hash, role, app, env,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(expires_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(expires_at, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(revoked_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(revoked_at, 21, 6) AS INTEGER),
       revision, user_name
FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;

CREATE TABLE users_new (
    name          TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    bindings      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL,
    revision      INTEGER NOT NULL
);
INSERT INTO users_new (name, password_hash, bindings, created_at, disabled, revision)
SELECT name, password_hash, bindings,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       disabled, revision
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE flag_counts_new (
    app      TEXT NOT NULL,
    env      TEXT NOT NULL,
    key      TEXT NOT NULL,
    variant  TEXT NOT NULL,
    count    INTEGER NOT NULL,
    last_at  INTEGER,
    PRIMARY KEY (app, env, key, variant)
);
INSERT INTO flag_counts_new (app, env, key, variant, count, last_at)
SELECT app, env, key, variant, count,
       CAST(strftime('%s', substr(last_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(last_at, 21, 6) AS INTEGER)
FROM flag_counts;
DROP TABLE flag_counts;
ALTER TABLE flag_counts_new RENAME TO flag_counts;

CREATE TABLE secrets_new (
    app              TEXT NOT NULL,
    env              TEXT NOT NULL,
    name             TEXT NOT NULL,
    version          INTEGER NOT NULL,
    deleted          INTEGER NOT NULL DEFAULT 0,
    rotation_days    INTEGER,
    grace_days       INTEGER NOT NULL,
    generator        TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    revision         INTEGER NOT NULL,
    rotation_seconds INTEGER,
    hook_secret      TEXT,
    PRIMARY KEY (app, env, name)
);
INSERT INTO secrets_new (app, env, name, version, deleted, rotation_days, grace_days, generator,
                         created_at, updated_at, revision, rotation_seconds, hook_secret)
SELECT app, env, name, version, deleted, rotation_days, grace_days, generator,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(updated_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(updated_at, 21, 6) AS INTEGER),
       revision, rotation_seconds, hook_secret
FROM secrets;
DROP TABLE secrets;
ALTER TABLE secrets_new RENAME TO secrets;

CREATE TABLE secret_versions_new (
    app          TEXT NOT NULL,
    env          TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    revision     INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    PRIMARY KEY (app, env, name, version)
);
INSERT INTO secret_versions_new (app, env, name, version, kek_id, wrapped_key, ciphertext,
                                 created_at, revision, actor)
SELECT app, env, name, version, kek_id, wrapped_key, ciphertext,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       revision, actor
FROM secret_versions;
DROP TABLE secret_versions;
ALTER TABLE secret_versions_new RENAME TO secret_versions;

CREATE TABLE leases_new (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
INSERT INTO leases_new (name, holder, expires_at)
SELECT name, holder,
       CAST(strftime('%s', substr(expires_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(expires_at, 21, 6) AS INTEGER)
FROM leases;
DROP TABLE leases;
ALTER TABLE leases_new RENAME TO leases;

CREATE TABLE applied_new (
    app         TEXT NOT NULL,
    env         TEXT NOT NULL,
    instance    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    checksum    TEXT NOT NULL,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (app, env, instance)
);
INSERT INTO applied_new (app, env, instance, revision, checksum, reported_at)
SELECT app, env, instance, revision, checksum,
       CAST(strftime('%s', substr(reported_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(reported_at, 21, 6) AS INTEGER)
FROM applied;
DROP TABLE applied;
ALTER TABLE applied_new RENAME TO applied;

-- webhook_deliveries references webhooks by name: it points at the new table once renamed.
CREATE TABLE webhooks_new (
    id           TEXT PRIMARY KEY NOT NULL,
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,            -- JSON array of event types
    app          TEXT,                     -- NULL: every app
    env          TEXT,                     -- NULL: every environment
    description  TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    revision     INTEGER NOT NULL,
    created_seq  INTEGER NOT NULL,         -- audit seq of the creation record
    deleted_at   INTEGER,
    deleted_seq  INTEGER
);
INSERT INTO webhooks_new (id, url, events, app, env, description, kek_id, wrapped_key, ciphertext,
                          created_at, revision, created_seq, deleted_at, deleted_seq)
SELECT id, url, events, app, env, description, kek_id, wrapped_key, ciphertext,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       revision, created_seq,
       CAST(strftime('%s', substr(deleted_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(deleted_at, 21, 6) AS INTEGER),
       deleted_seq
FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_new RENAME TO webhooks;

CREATE TABLE webhook_deliveries_new (
    id               TEXT PRIMARY KEY NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id),
    audit_seq        INTEGER NOT NULL,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,        -- pending | delivered | failed | cancelled
    attempts         INTEGER NOT NULL,
    attempt_log      TEXT NOT NULL,        -- JSON array of attempts
    next_attempt_at  INTEGER,
    created_at       INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    delivered_at     INTEGER,
    UNIQUE (webhook_id, audit_seq)
);
INSERT INTO webhook_deliveries_new (id, webhook_id, audit_seq, event, payload, status, attempts,
                                    attempt_log, next_attempt_at, created_at, last_attempt_at,
                                    delivered_at)
SELECT id, webhook_id, audit_seq, event, payload, status, attempts, attempt_log,
       CAST(strftime('%s', substr(next_attempt_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(next_attempt_at, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(last_attempt_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(last_attempt_at, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(delivered_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(delivered_at, 21, 6) AS INTEGER)
FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
