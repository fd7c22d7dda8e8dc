-- Whether the session that created an API key had passed a second factor.
-- With `require_mfa_for_admins`, only such keys administer (user
-- administration, the audit trail, lifecycle runs): a key minted in a
-- session without MFA must not carry more assurance than that session.
-- Keys created before this column existed are not known to have been, so
-- they start FALSE (operations.md: mint admin keys again from an MFA session).
ALTER TABLE api_keys ADD COLUMN minted_with_mfa BOOLEAN NOT NULL DEFAULT FALSE;
