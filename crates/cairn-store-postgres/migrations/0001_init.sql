-- Cairn store, PostgreSQL. Scopes are stored as ('' = global app, '' = every environment).
-- JSON values are stored as text, exactly as serialized (jsonb would reorder keys and
-- normalize numbers), so they round-trip unchanged.

-- One row: the latest revision, the latest catalog revision, the oldest retained revision.
-- Every commit starts by incrementing head: the row lock serializes committers across
-- replicas and a rollback gives the number back, so revisions are gapless, in commit order.
CREATE TABLE meta (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    head               BIGINT NOT NULL,
    catalog_revision   BIGINT NOT NULL,
    compacted_revision BIGINT NOT NULL
);
INSERT INTO meta (id, head, catalog_revision, compacted_revision) VALUES (1, 0, 0, 0);

CREATE TABLE apps (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revision    BIGINT NOT NULL
);

CREATE TABLE environments (
    name               TEXT PRIMARY KEY,
    description        TEXT NOT NULL,
    protected          BOOLEAN NOT NULL,
    required_approvals INTEGER NOT NULL,
    auto_approve       BOOLEAN NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    revision           BIGINT NOT NULL
);

-- Every version of every schema; the active one is the latest per (app, pattern).
CREATE TABLE schemas (
    app        TEXT NOT NULL,
    pattern    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    schema     TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app, pattern, version)
);

-- Immutable history. value NULL = tombstone. position = index of the mutation in its commit.
CREATE TABLE entry_versions (
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    merge      TEXT NOT NULL,
    value      TEXT,
    checksum   TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    position   BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app, env, key, version)
);
CREATE INDEX entry_versions_by_revision ON entry_versions (revision, position);

-- The latest version of every entry ever written (deleted = its latest version is a tombstone).
CREATE TABLE entries (
    app     TEXT NOT NULL,
    env     TEXT NOT NULL,
    key     TEXT NOT NULL,
    version BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (app, env, key),
    FOREIGN KEY (app, env, key, version) REFERENCES entry_versions (app, env, key, version)
);

-- seq is gapless: allocated as max + 1 while the commit holds the meta row lock.
CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY,
    revision     BIGINT,
    at           TIMESTAMPTZ NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    app          TEXT,
    env          TEXT,
    key          TEXT,
    from_version BIGINT,
    to_version   BIGINT,
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
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    revision   BIGINT NOT NULL
);
