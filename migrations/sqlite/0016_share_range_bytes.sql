-- Bytes sent to reads of a limited share link that continue a download: a
-- range starting after the first byte (a resumed download, a seek in a
-- video, one segment of a parallel download). Such reads do not count as
-- downloads of their own; together they may send at most max_downloads
-- times the object's size. Keep in step with migrations/postgres/0016_share_range_bytes.sql.
ALTER TABLE shares ADD COLUMN range_bytes INTEGER NOT NULL DEFAULT 0;
