-- Share links for people: a token (stored hashed), optional password, expiry,
-- download limit counted atomically, revocation, throttled password attempts.
-- Keep in step with migrations/postgres/0005_shares.sql.

CREATE TABLE shares (
    id                 TEXT    PRIMARY KEY,
    token_hash         TEXT    NOT NULL UNIQUE,
    bucket_id          INTEGER NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    object_key         TEXT    NOT NULL,
    created_by         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER,
    password_hash      TEXT,
    max_downloads      INTEGER CHECK (max_downloads IS NULL OR max_downloads >= 1),
    downloads          INTEGER NOT NULL DEFAULT 0,
    revoked_at         INTEGER,
    password_failures  INTEGER NOT NULL DEFAULT 0,
    failures_since     INTEGER,
    locked_until       INTEGER
);
CREATE INDEX shares_by_creator ON shares (created_by, created_at);
