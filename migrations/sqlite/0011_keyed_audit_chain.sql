-- The audit chain becomes keyed: events from keyed_from on are hashed with an
-- HMAC under a key derived from the master key, and the anchor is sealed with
-- it. Coffer fills both at its first start after this migration (the events
-- before it keep their plain SHA-256). Keep in step with the other engine's 0011.
ALTER TABLE audit_anchor ADD COLUMN keyed_from BIGINT;
ALTER TABLE audit_anchor ADD COLUMN seal TEXT;
