-- Staff of the city: health officers, auditors, administrators. They sign in with a password
-- (argon2id) and a one-time code sent to their phone; their region is a node of the
-- administrative division tree (city 4 digits, district 6, street 9, community 12).

CREATE TABLE staff (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    display_name   text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 64),
    phone_enc      bytea NOT NULL,                 -- AES-GCM; the OTP goes to this phone
    password_hash  text NOT NULL,                  -- argon2id, parameters inside the hash
    roles          text[] NOT NULL CHECK (
        cardinality(roles) > 0 AND roles <@ ARRAY['health_officer', 'auditor', 'admin']::text[]
    ),
    region_code    text NOT NULL CHECK (region_code ~ '^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    disabled_at    timestamptz
);
CREATE INDEX staff_disabled ON staff (disabled_at) WHERE disabled_at IS NOT NULL;
