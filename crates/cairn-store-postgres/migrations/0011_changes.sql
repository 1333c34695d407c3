-- Change requests (DESIGN.md §7): one row per request, replaced whole by each
-- transition under compare-and-set on `version`; `record` is the JSON
-- ChangeRecord, the columns are what lists filter and sort on.
CREATE TABLE changes (
    id          TEXT PRIMARY KEY NOT NULL,
    version     BIGINT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,   -- microseconds since the Unix epoch
    revision    BIGINT NOT NULL,   -- the revision of the last transition
    record      TEXT NOT NULL
);
CREATE INDEX changes_by_state ON changes (state, created_at);
