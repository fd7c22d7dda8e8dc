-- The audit chain becomes keyed: once the anchor is sealed, events from
-- keyed_from on are hashed with an HMAC under a key derived from the master
-- key, and the seal covers the anchor. Both stay NULL on a chain that has
-- events until `coffer audit seal` (run after every replica is upgraded); a
-- chain without events is sealed by the first process that writes.
-- Keep in step with the other engine's 0011.
ALTER TABLE audit_anchor ADD COLUMN keyed_from BIGINT;
ALTER TABLE audit_anchor ADD COLUMN seal TEXT;
