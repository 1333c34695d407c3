-- Timestamps become integers: microseconds since the Unix epoch (UTC), as on SQLite.
-- timestamptz keeps microseconds, so the conversion is exact.

-- Microseconds since the epoch of a timestamptz. Whole seconds and the microseconds within the
-- second are taken apart, so the result is exact whatever EXTRACT returns (numeric from
-- PostgreSQL 14, double precision before); computed in UTC, so it does not depend on the
-- session's time zone. Also used at run time (leases: the database's clock decides).
CREATE FUNCTION cairn_micros(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT EXTRACT(EPOCH FROM date_trunc('second', t AT TIME ZONE 'UTC'))::bigint * 1000000
         + EXTRACT(MICROSECONDS FROM t AT TIME ZONE 'UTC')::bigint % 1000000
$$;

ALTER TABLE apps ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at);
ALTER TABLE environments ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at);
ALTER TABLE schemas ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at);
ALTER TABLE entry_versions ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at);
ALTER TABLE audit ALTER COLUMN at TYPE BIGINT USING cairn_micros(at);
ALTER TABLE tokens
    ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at),
    ALTER COLUMN expires_at TYPE BIGINT USING cairn_micros(expires_at),
    ALTER COLUMN revoked_at TYPE BIGINT USING cairn_micros(revoked_at);
ALTER TABLE users ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at);
ALTER TABLE flag_counts ALTER COLUMN last_at TYPE BIGINT USING cairn_micros(last_at);
ALTER TABLE secrets
    ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at),
    ALTER COLUMN updated_at TYPE BIGINT USING cairn_micros(updated_at);
ALTER TABLE secret_versions ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at);
ALTER TABLE leases ALTER COLUMN expires_at TYPE BIGINT USING cairn_micros(expires_at);
ALTER TABLE applied ALTER COLUMN reported_at TYPE BIGINT USING cairn_micros(reported_at);
ALTER TABLE webhooks
    ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at),
    ALTER COLUMN deleted_at TYPE BIGINT USING cairn_micros(deleted_at);
ALTER TABLE webhook_deliveries
    ALTER COLUMN next_attempt_at TYPE BIGINT USING cairn_micros(next_attempt_at),
    ALTER COLUMN created_at TYPE BIGINT USING cairn_micros(created_at),
    ALTER COLUMN last_attempt_at TYPE BIGINT USING cairn_micros(last_attempt_at),
    ALTER COLUMN delivered_at TYPE BIGINT USING cairn_micros(delivered_at);
