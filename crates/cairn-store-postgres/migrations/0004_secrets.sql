-- Secrets: one row per secret (policy, current version) and one per sealed version.
-- Only ciphertext and wrapped data keys are stored, never plaintext.
CREATE TABLE secrets (
    app            TEXT NOT NULL,
    env            TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    deleted        BOOLEAN NOT NULL DEFAULT FALSE,
    rotation_days  INTEGER,
    grace_days     INTEGER NOT NULL,
    generator      TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    revision       BIGINT NOT NULL,
    PRIMARY KEY (app, env, name)
);

CREATE TABLE secret_versions (
    app          TEXT NOT NULL,
    env          TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_key  BYTEA NOT NULL,
    ciphertext   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revision     BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    PRIMARY KEY (app, env, name, version)
);
