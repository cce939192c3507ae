-- Foundation: signing keys and the append-only audit log shared by every domain.

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY CHECK (kid ~ '^[a-z]+-[0-9]{8}-[0-9a-f]{8}$'),
    purpose         text NOT NULL CHECK (purpose IN ('token', 'code', 'service')),
    public_key      bytea NOT NULL CHECK (length(public_key) = 32),
    private_key_enc bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    active_from     timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz,
    verify_until    timestamptz
);
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, active_from);

-- Who did what to whom, when, from where, with what outcome. Never a secret or clear PII:
-- actors and subjects are internal ids or pseudonyms, addresses are kept as given by the proxy.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_type  text NOT NULL,          -- citizen | staff | partner | system | anonymous
    actor_id    text,
    subject_id  text,                   -- whose data or account the event concerns
    action      text NOT NULL,          -- e.g. auth.login, auth.refresh.reuse, level.raised
    outcome     text NOT NULL,          -- success | failure | denied
    client_ip   text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_subject ON audit_log (subject_id, at DESC);
CREATE INDEX audit_log_action ON audit_log (action, at DESC);

-- Append-only: the audit trail cannot be edited from the application's connection.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
