-- Separation of duties (等保 2.0 level 3, 三员分立): the system administrator, the security
-- administrator and the auditor are three different people. `admin` becomes
-- `system_admin`; `security_admin` is new; an auditor holds no other role.
--
-- Accounts that held `auditor` next to another role keep the other role(s) and lose
-- `auditor` (the auditor role gave read access only, which their other role already has,
-- so nothing they did before stops working); each change is written to the audit log.

INSERT INTO audit_log (actor_type, actor_id, subject_id, action, outcome, details)
SELECT 'system', 'migration-0015', id::text, 'staff.roles.changed', 'success',
       jsonb_build_object(
           'from', to_jsonb(roles),
           'to', to_jsonb(array_remove(array_replace(roles, 'admin', 'system_admin'), 'auditor')),
           'reason', 'separation_of_duties'
       )
FROM staff
WHERE 'auditor' = ANY (roles) AND cardinality(roles) > 1;

ALTER TABLE staff DROP CONSTRAINT staff_roles_check;

UPDATE staff
SET roles = CASE
    WHEN 'auditor' = ANY (roles) AND cardinality(roles) > 1
        THEN array_remove(array_replace(roles, 'admin', 'system_admin'), 'auditor')
    ELSE array_replace(roles, 'admin', 'system_admin')
END
WHERE 'admin' = ANY (roles) OR ('auditor' = ANY (roles) AND cardinality(roles) > 1);

ALTER TABLE staff ADD CONSTRAINT staff_roles_known CHECK (
    cardinality(roles) > 0
    AND roles <@ ARRAY['health_officer', 'system_admin', 'security_admin', 'auditor']::text[]
);

-- At most one of the three duties, and an auditor is only an auditor. The application
-- checks first and explains; this is the backstop for any other writer.
ALTER TABLE staff ADD CONSTRAINT staff_separation_of_duties CHECK (
    (('system_admin' = ANY (roles))::int + ('security_admin' = ANY (roles))::int + ('auditor' = ANY (roles))::int) <= 1
    AND NOT ('auditor' = ANY (roles) AND cardinality(roles) > 1)
);

-- The auditor pages the log newest first by id (keyset) and filters by action.
CREATE INDEX IF NOT EXISTS audit_log_action_id ON audit_log (action, id DESC);
