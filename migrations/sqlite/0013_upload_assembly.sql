-- What a completion of an upload sent for assembly, so that a completion
-- sent again after the assembly could not be committed (the database
-- unreachable, a crash) commits the assembled object only for the same list:
-- attempt_etag and attempt_size are the multipart ETag and the size of the
-- list the latest completion sent; assembled_etag the ETag of the list whose
-- object the backend holds assembled, once known.
ALTER TABLE uploads ADD COLUMN attempt_etag TEXT;
ALTER TABLE uploads ADD COLUMN attempt_size BIGINT;
ALTER TABLE uploads ADD COLUMN assembled_etag TEXT;
