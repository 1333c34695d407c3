-- Flag evaluation totals per (app, env, flag, variant), flushed from memory periodically.
CREATE TABLE flag_counts (
    app      TEXT NOT NULL,
    env      TEXT NOT NULL,
    key      TEXT NOT NULL,
    variant  TEXT NOT NULL,
    count    INTEGER NOT NULL,
    last_at  TEXT,
    PRIMARY KEY (app, env, key, variant)
);
