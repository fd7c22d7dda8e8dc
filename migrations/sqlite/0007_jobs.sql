-- Background jobs (thumbnails on upload): persisted so they survive restarts,
-- de-duplicated by key, claimed with a lease, retried with backoff.
-- Keep in step with migrations/postgres/0007_jobs.sql.

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    dedupe_key    TEXT    NOT NULL UNIQUE,
    payload       TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_after     INTEGER NOT NULL,
    locked_by     TEXT,
    locked_until  INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL
);

CREATE INDEX jobs_due ON jobs (run_after);
