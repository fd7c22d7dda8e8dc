-- Where the audit chain starts: genesis until a purge removes old events,
-- then the first kept event and the hash it links to.
-- Keep in step with migrations/sqlite/0003_audit_anchor.sql.

CREATE TABLE audit_anchor (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    first_id  BIGINT NOT NULL,
    prev_hash TEXT    NOT NULL
);
INSERT INTO audit_anchor (id, first_id, prev_hash)
VALUES (1, 1, '0000000000000000000000000000000000000000000000000000000000000000');
