-- Cairn store, SQLite. Scopes are stored as ('' = global app, '' = every environment).
-- Timestamps are UTC text, fixed width (YYYY-MM-DDTHH:MM:SS.ffffffZ), so text order is time order.
-- JSON values are stored as text, exactly as serialized, so they round-trip unchanged.

-- One row: the latest revision, the latest catalog revision, the oldest retained revision.
CREATE TABLE meta (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    head               INTEGER NOT NULL,
    catalog_revision   INTEGER NOT NULL,
    compacted_revision INTEGER NOT NULL
);
INSERT INTO meta (id, head, catalog_revision, compacted_revision) VALUES (1, 0, 0, 0);

CREATE TABLE apps (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revision    INTEGER NOT NULL
);

CREATE TABLE environments (
    name               TEXT PRIMARY KEY NOT NULL,
    description        TEXT NOT NULL,
    protected          INTEGER NOT NULL,
    required_approvals INTEGER NOT NULL,
    auto_approve       INTEGER NOT NULL,
    created_at         TEXT NOT NULL,
    revision           INTEGER NOT NULL
);

-- Every version of every schema; the active one is the latest per (app, pattern).
CREATE TABLE schemas (
    app        TEXT NOT NULL,
    pattern    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    schema     TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (app, pattern, version)
);

-- Immutable history. value NULL = tombstone. position = index of the mutation in its commit.
CREATE TABLE entry_versions (
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
    created_at TEXT NOT NULL,
    PRIMARY KEY (app, env, key, version)
);
CREATE INDEX entry_versions_by_revision ON entry_versions (revision, position);

-- The latest version of every entry ever written (deleted = its latest version is a tombstone).
CREATE TABLE entries (
    app     TEXT NOT NULL,
    env     TEXT NOT NULL,
    key     TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    PRIMARY KEY (app, env, key),
    FOREIGN KEY (app, env, key, version) REFERENCES entry_versions (app, env, key, version)
);

-- seq is gapless: it is allocated as max + 1 inside the (single) writer's transaction.
CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY,
    revision     INTEGER,
    at           TEXT NOT NULL,
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
    detail       TEXT NOT NULL
);
CREATE INDEX audit_by_key ON audit (key);
CREATE INDEX audit_by_at ON audit (at);

-- Only the SHA-256 of a token's secret is stored.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    revision   INTEGER NOT NULL
);
