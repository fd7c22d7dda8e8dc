-- Unfinished uploads by owner: creating one counts its owner's (max_open_uploads).
-- Keep in step with the other engine's 0017_uploads_by_owner.sql.
CREATE INDEX uploads_by_owner ON uploads (owner_id);
