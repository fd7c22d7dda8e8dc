-- Uploads completed in the last day, so that a completion sent again after
-- its answer was lost (a timeout, a dropped connection) is answered with the
-- object it committed instead of 404: the key and backend key of that
-- object, and the ETag of the list of parts it was completed with. The
-- reconciler forgets them after a day; a deleted bucket or user takes theirs.
CREATE TABLE completed_uploads (
    id           TEXT    PRIMARY KEY,
    bucket_id    INTEGER NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    object_key   TEXT    NOT NULL,
    owner_id     INTEGER REFERENCES users (id) ON DELETE CASCADE,
    blob_key     TEXT    NOT NULL,
    etag         TEXT    NOT NULL,
    completed_at INTEGER NOT NULL
);
CREATE INDEX completed_uploads_by_age ON completed_uploads (completed_at);
CREATE INDEX completed_uploads_by_bucket ON completed_uploads (bucket_id);
CREATE INDEX completed_uploads_by_owner ON completed_uploads (owner_id);
