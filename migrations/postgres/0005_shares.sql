-- Share links for people: a token (stored hashed), optional password, expiry,
-- download limit counted atomically, revocation, throttled password attempts.
-- Keep in step with migrations/sqlite/0005_shares.sql.

CREATE TABLE shares (
    id                 TEXT    PRIMARY KEY,
    token_hash         TEXT    NOT NULL UNIQUE,
    bucket_id          BIGINT NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    object_key         TEXT    COLLATE "C" NOT NULL,
    created_by         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT,
    password_hash      TEXT,
    max_downloads      BIGINT CHECK (max_downloads IS NULL OR max_downloads >= 1),
    downloads          BIGINT NOT NULL DEFAULT 0,
    revoked_at         BIGINT,
    password_failures  BIGINT NOT NULL DEFAULT 0,
    failures_since     BIGINT,
    locked_until       BIGINT
);
CREATE INDEX shares_by_creator ON shares (created_by, created_at);
