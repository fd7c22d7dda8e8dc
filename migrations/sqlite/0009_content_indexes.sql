-- Finding the objects that hold some content (are its thumbnails still
-- needed?) by digest: sha256 for single-request uploads, the multipart ETag
-- for objects assembled from parts (they have no sha256). Without these, every
-- delete of an image scanned the whole objects table.
-- Keep in step with migrations/postgres/0009_content_indexes.sql.

CREATE INDEX objects_by_sha256 ON objects (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX objects_by_etag_without_sha256 ON objects (etag) WHERE sha256 IS NULL;
