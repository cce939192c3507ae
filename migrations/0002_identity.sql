-- Citizen identity: accounts, sessions (one per login on a device), rotating refresh tokens,
-- and mini-program links. Phones and ID numbers are AES-GCM ciphertext plus a keyed blind
-- index; nothing here holds them, an OTP or a token in clear.

CREATE TABLE accounts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_enc        bytea NOT NULL,
    phone_index      bytea NOT NULL UNIQUE,
    level            text NOT NULL DEFAULT 'L2' CHECK (level IN ('L2', 'L3', 'L4')),
    name_enc         bytea,
    id_number_enc    bytea,
    id_number_index  bytea UNIQUE,                -- one ID number, one account
    region_code      text CHECK (region_code ~ '^[0-9]{6}$'),  -- registered division (ID digits 1-6)
    created_at       timestamptz NOT NULL DEFAULT now(),
    level_changed_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((level = 'L2') = (id_number_index IS NULL))
);

CREATE TABLE sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),   -- the `sid` claim
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id     text NOT NULL,
    device_name   text NOT NULL,
    platform      text NOT NULL,
    auth_method   text NOT NULL,                  -- otp | miniprogram
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,           -- absolute lifetime
    ended_at      timestamptz,
    end_reason    text
);
CREATE INDEX sessions_account ON sessions (account_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;

-- A refresh token's family is its session: every token descended from one login.
CREATE TABLE refresh_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,            -- HMAC of the token; the token itself is never stored
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,             -- idle lifetime, capped by the session's
    used_at     timestamptz,                      -- rotated: presenting it again is reuse
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE miniprogram_links (
    platform      text NOT NULL,
    openid_index  bytea NOT NULL,                 -- blind index of the platform openid
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, openid_index)
);
