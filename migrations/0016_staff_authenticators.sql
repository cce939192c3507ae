-- WebAuthn/FIDO2 authenticators of staff: the second factor after the password (等保 2.0
-- level 3). One row per registered credential; a revoked one stays for the record.

CREATE TABLE staff_authenticators (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    staff_id        uuid NOT NULL REFERENCES staff (id),
    credential_id   bytea NOT NULL UNIQUE CHECK (length(credential_id) BETWEEN 1 AND 1023),
    public_key      bytea NOT NULL,                 -- COSE_Key, as the authenticator sent it
    sign_count      bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    transports      text[] NOT NULL DEFAULT '{}',
    aaguid          text NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    -- recovery: a security administrator reset the member's authenticators;
    -- cloned: its signature counter went backwards (a copy of the key is in use).
    revoked_reason  text CHECK (revoked_reason IN ('recovery', 'cloned')),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX staff_authenticators_active ON staff_authenticators (staff_id) WHERE revoked_at IS NULL;

-- Set when a key's signature counter went backwards (a copy is in use): until a security
-- administrator's recovery clears it, the account cannot fall back to enrolling a new key by
-- SMS, even once no active key is left.
ALTER TABLE staff ADD COLUMN webauthn_blocked_at timestamptz;
