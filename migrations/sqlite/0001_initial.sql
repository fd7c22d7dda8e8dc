-- Coffer schema v1 (SQLite). Times are microseconds since the Unix epoch.
-- Keep in step with migrations/postgres/0001_initial.sql.

CREATE TABLE users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    username         TEXT    NOT NULL UNIQUE,
    password_hash    TEXT    NOT NULL,
    role             TEXT    NOT NULL CHECK (role IN ('admin', 'user', 'auditor')),
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    quota_bytes      INTEGER CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
    used_bytes       INTEGER NOT NULL DEFAULT 0,
    token_generation INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE buckets (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    name                   TEXT    NOT NULL UNIQUE,
    owner_id               INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at             INTEGER NOT NULL,
    default_retention_mode TEXT CHECK (default_retention_mode IN ('GOVERNANCE', 'COMPLIANCE')),
    default_retention_days INTEGER CHECK (default_retention_days IS NULL OR default_retention_days >= 1)
);

CREATE TABLE grants (
    bucket_id  INTEGER NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permission TEXT    NOT NULL CHECK (permission IN ('read', 'write', 'manage')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bucket_id, user_id)
);
CREATE INDEX grants_by_user ON grants (user_id);

CREATE TABLE objects (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket_id      INTEGER NOT NULL REFERENCES buckets (id),
    object_key     TEXT    NOT NULL,
    blob_key       TEXT    NOT NULL UNIQUE,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'committed', 'deleting')),
    size           INTEGER NOT NULL DEFAULT 0,
    etag           TEXT,
    sha256         TEXT,
    content_type   TEXT    NOT NULL,
    owner_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    retention_mode TEXT CHECK (retention_mode IN ('GOVERNANCE', 'COMPLIANCE')),
    retain_until   INTEGER,
    legal_hold     BOOLEAN NOT NULL DEFAULT FALSE
);
-- One visible version per key; pending and deleting rows may coexist with it.
CREATE UNIQUE INDEX objects_live_key ON objects (bucket_id, object_key) WHERE state = 'committed';
CREATE INDEX objects_by_state ON objects (state, updated_at);
CREATE INDEX objects_by_bucket ON objects (bucket_id, object_key);

CREATE TABLE uploads (
    id                TEXT    PRIMARY KEY,
    bucket_id         INTEGER NOT NULL REFERENCES buckets (id),
    object_key        TEXT    NOT NULL,
    blob_key          TEXT    NOT NULL UNIQUE,
    backend_upload_id TEXT    NOT NULL,
    owner_id          INTEGER REFERENCES users (id) ON DELETE SET NULL,
    content_type      TEXT,
    declared_size     INTEGER,
    part_size         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX uploads_by_age ON uploads (created_at);

CREATE TABLE upload_parts (
    upload_id    TEXT    NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number  INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    size         INTEGER NOT NULL,
    etag         TEXT    NOT NULL,
    backend_etag TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Append-only, hash-chained audit trail. Ids are assigned by the writer
-- (head.last_id + 1) so a missing row is a visible gap.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    bucket     TEXT,
    object_key TEXT,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    ip         TEXT,
    user_agent TEXT,
    request_id TEXT,
    details    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_by_actor ON audit_events (actor, id);
CREATE INDEX audit_by_action ON audit_events (action, id);
CREATE INDEX audit_by_bucket ON audit_events (bucket, id);
CREATE INDEX audit_by_time ON audit_events (at);

-- The single row every audit append locks and advances, so concurrent
-- writers (and replicas) extend one chain without forks.
CREATE TABLE audit_chain_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO audit_chain_head (id, last_id, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
