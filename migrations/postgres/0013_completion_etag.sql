-- The ETag of the part list the first unsettled completion of an upload sent
-- for assembly. A completion whose answer was lost leaves the object assembled
-- and the backend upload gone; a retried completion commits that object only
-- when it names the same list (same ETag), never another list's bytes.
-- Cleared when a completion failed with nothing assembled.
ALTER TABLE uploads ADD COLUMN completion_etag TEXT;
