-- What each SDK/agent instance of (app, env) last reported it applied (drift groundwork).
CREATE TABLE applied (
    app         TEXT NOT NULL,
    env         TEXT NOT NULL,
    instance    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    checksum    TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (app, env, instance)
);
