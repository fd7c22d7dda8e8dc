-- Resumable uploads: a state machine (open → completing → gone) and the bytes
-- charged to the owner's quota for their parts.
-- Keep in step with migrations/sqlite/0004_upload_state.sql.

ALTER TABLE uploads ADD COLUMN state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completing'));
ALTER TABLE uploads ADD COLUMN state_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN charged_bytes BIGINT NOT NULL DEFAULT 0;
CREATE INDEX uploads_by_bucket ON uploads (bucket_id, object_key);
