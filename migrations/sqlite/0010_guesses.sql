-- Wrong share-link passwords are counted like wrong logins (login_throttle,
-- scope 'share', subject the share id): each guess is claimed before it is
-- checked. A link remembers the API key that created it, so revoking the
-- key voids the link. Expired credentials and spent throttle rows are purged
-- by the reconciler, by these indexes. Managers list a bucket's links by
-- shares_by_bucket.
-- Keep in step with migrations/postgres/0010_guesses.sql.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.

CREATE TABLE login_throttle_next (
    scope        TEXT    NOT NULL CHECK (scope IN ('account', 'ip', 'second_factor', 'share')),
    subject      TEXT    NOT NULL,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER,
    PRIMARY KEY (scope, subject)
);
INSERT INTO login_throttle_next (scope, subject, failures, window_start, locked_until)
    SELECT scope, subject, failures, window_start, locked_until FROM login_throttle;
DROP TABLE login_throttle;
ALTER TABLE login_throttle_next RENAME TO login_throttle;

ALTER TABLE shares DROP COLUMN password_failures;
ALTER TABLE shares DROP COLUMN failures_since;
ALTER TABLE shares DROP COLUMN locked_until;
ALTER TABLE shares ADD COLUMN api_key_id TEXT;

CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX mfa_challenges_by_expiry ON mfa_challenges (expires_at);
CREATE INDEX login_throttle_by_window ON login_throttle (window_start);
CREATE INDEX shares_by_bucket ON shares (bucket_id, created_at);
