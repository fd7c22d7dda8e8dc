-- Quota for parts a client uploads straight to S3 (direct transfer mode):
-- issuing a part's URL reserves the size it is signed for. A part's
-- reservation only grows (re-signing with a smaller size keeps the larger
-- one, since a URL already handed out may still be used) until the upload
-- completes (charged exactly) or is aborted (released).
CREATE TABLE direct_part_reservations (
    upload_id   TEXT   NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number BIGINT NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    bytes       BIGINT NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (upload_id, part_number)
);
