-- Wrong share-link passwords are counted like wrong logins (login_throttle,
-- scope 'share', subject the share id): each guess is claimed before it is
-- checked. A link remembers the API key that created it, so revoking the
-- key voids the link. Expired credentials and spent throttle rows are purged
-- by the reconciler, by these indexes. Managers list a bucket's links by
-- shares_by_bucket.
-- Keep in step with migrations/sqlite/0010_guesses.sql.

ALTER TABLE login_throttle DROP CONSTRAINT login_throttle_scope_check;
ALTER TABLE login_throttle
    ADD CONSTRAINT login_throttle_scope_check CHECK (scope IN ('account', 'ip', 'second_factor', 'share'));

ALTER TABLE shares DROP COLUMN password_failures;
ALTER TABLE shares DROP COLUMN failures_since;
ALTER TABLE shares DROP COLUMN locked_until;
ALTER TABLE shares ADD COLUMN api_key_id TEXT;

CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX mfa_challenges_by_expiry ON mfa_challenges (expires_at);
CREATE INDEX login_throttle_by_window ON login_throttle (window_start);
CREATE INDEX shares_by_bucket ON shares (bucket_id, created_at);
