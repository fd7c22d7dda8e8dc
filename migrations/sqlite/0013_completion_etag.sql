-- The multipart ETag of the part list whose object the backend holds
-- assembled for an upload whose completion could not commit it (the database
-- unreachable after the assembly). The upload is reopened, and a retried
-- completion commits that object only when it names the same list.
ALTER TABLE uploads ADD COLUMN completion_etag TEXT;
