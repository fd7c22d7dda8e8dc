-- What a completion of an upload sent for assembly, so that a completion
-- sent again after the assembly could not be committed (the database
-- unreachable, a crash) commits the assembled object only for the same list:
-- attempt_etag is the multipart ETag of the list the latest completion sent;
-- assembled_etag that of the list whose object the backend holds assembled,
-- once known.
ALTER TABLE uploads ADD COLUMN attempt_etag TEXT;
ALTER TABLE uploads ADD COLUMN assembled_etag TEXT;
