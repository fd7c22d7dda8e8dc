-- The token generation an MFA step was opened under: the step completes only
-- while it still stands (a reset in flight with the step ends it). Steps
-- open at the upgrade read -1 and are asked to log in again.
-- Keep in step with the other engine's 0018_mfa_challenge_generation.sql.
ALTER TABLE mfa_challenges ADD COLUMN generation BIGINT NOT NULL DEFAULT -1;
