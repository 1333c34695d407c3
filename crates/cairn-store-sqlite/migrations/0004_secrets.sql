-- Secrets: one row per secret (policy, current version) and one per sealed version.
-- Only ciphertext and wrapped data keys are stored, never plaintext.
CREATE TABLE secrets (
    app            TEXT NOT NULL,
    env            TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    rotation_days  INTEGER,
    grace_days     INTEGER NOT NULL,
    generator      TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    PRIMARY KEY (app, env, name)
);

CREATE TABLE secret_versions (
    app          TEXT NOT NULL,
    env          TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    PRIMARY KEY (app, env, name, version)
);
