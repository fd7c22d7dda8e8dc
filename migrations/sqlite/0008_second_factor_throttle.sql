-- Wrong second-factor codes are counted per account (scope 'second_factor',
-- subject the user id), across MFA challenges and MFA changes.
-- Keep in step with migrations/postgres/0008_second_factor_throttle.sql.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.

CREATE TABLE login_throttle_next (
    scope        TEXT    NOT NULL CHECK (scope IN ('account', 'ip', 'second_factor')),
    subject      TEXT    NOT NULL,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER,
    PRIMARY KEY (scope, subject)
);
INSERT INTO login_throttle_next (scope, subject, failures, window_start, locked_until)
    SELECT scope, subject, failures, window_start, locked_until FROM login_throttle;
DROP TABLE login_throttle;
ALTER TABLE login_throttle_next RENAME TO login_throttle;
