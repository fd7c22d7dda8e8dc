-- Wrong second-factor codes are counted per account (scope 'second_factor',
-- subject the user id), across MFA challenges and MFA changes.
-- Keep in step with migrations/sqlite/0008_second_factor_throttle.sql.

ALTER TABLE login_throttle DROP CONSTRAINT login_throttle_scope_check;
ALTER TABLE login_throttle
    ADD CONSTRAINT login_throttle_scope_check CHECK (scope IN ('account', 'ip', 'second_factor'));
