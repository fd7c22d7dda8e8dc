-- Lifecycle rules per bucket (a JSON array validated by the service), and
-- leases so that one replica at a time runs a singleton job.
-- Keep in step with migrations/sqlite/0006_lifecycle.sql.

ALTER TABLE buckets ADD COLUMN lifecycle_rules TEXT;

CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);
