-- OpenID Connect provider: registered clients, citizens' consents, authorization codes, grants
-- (the family of tokens one code produced), their rotating refresh tokens, and revoked access
-- token ids. No secret, code or token is stored in clear: only keyed hashes (HMAC under a key
-- derived from the master key).

CREATE TABLE oauth_clients (
    client_id                  text PRIMARY KEY CHECK (client_id ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    name                       text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    client_type                text NOT NULL CHECK (client_type IN ('confidential', 'public')),
    auth_method                text NOT NULL CHECK (
        auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none')
    ),
    secret_hash                bytea,                 -- HMAC-SHA256 of the secret; never the secret
    previous_secret_hash       bytea,                 -- still accepted until ..._expires_at (rotation)
    previous_secret_expires_at timestamptz,
    jwks                       jsonb,                 -- public keys for private_key_jwt
    redirect_uris              text[] NOT NULL DEFAULT '{}',
    scopes                     text[] NOT NULL,
    grant_types                text[] NOT NULL CHECK (
        grant_types <@ ARRAY['authorization_code', 'refresh_token', 'client_credentials']::text[]
    ),
    sector_id                  text NOT NULL,         -- pairwise subject sector (default: client_id)
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    disabled_at                timestamptz,
    CHECK ((client_type = 'public') = (auth_method = 'none')),
    CHECK (auth_method NOT IN ('client_secret_basic', 'client_secret_post') OR secret_hash IS NOT NULL),
    CHECK (auth_method <> 'private_key_jwt' OR jwks IS NOT NULL),
    -- A public client cannot keep a secret, so it can never hold machine credentials.
    CHECK (client_type = 'confidential' OR NOT ('client_credentials' = ANY (grant_types)))
);
CREATE INDEX oauth_clients_disabled ON oauth_clients (disabled_at) WHERE disabled_at IS NOT NULL;

-- What a citizen agreed to share with a client, one row per scope.
CREATE TABLE oauth_consents (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id   text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope       text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}'::jsonb,   -- e.g. {"full_name": true} for profile
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, client_id, scope)
);

-- One grant per redeemed authorization code: every token descended from it shares its id
-- (the `sid` of its access tokens), so a replayed code or refresh token revokes them all.
CREATE TABLE oauth_grants (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id      text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    account_id     uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    scope          text NOT NULL,
    claims         jsonb NOT NULL DEFAULT '{}'::jsonb, -- consent options at grant time
    acr            text NOT NULL,
    amr            text[] NOT NULL,
    auth_time      timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoke_reason  text
);
CREATE INDEX oauth_grants_account_client ON oauth_grants (account_id, client_id) WHERE revoked_at IS NULL;
CREATE INDEX oauth_grants_revoked ON oauth_grants (revoked_at) WHERE revoked_at IS NOT NULL;

-- Authorization codes live at most 60 s and are spent by the first redemption attempt; the
-- row is kept a while after use so a second attempt is recognised as reuse.
CREATE TABLE oauth_codes (
    code_hash       bytea PRIMARY KEY,
    client_id       text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    redirect_uri    text NOT NULL,
    scope           text NOT NULL,
    claims          jsonb NOT NULL DEFAULT '{}'::jsonb,
    nonce           text,
    code_challenge  text NOT NULL CHECK (code_challenge ~ '^[A-Za-z0-9_-]{43}$'),
    acr             text NOT NULL,
    amr             text[] NOT NULL,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    grant_id        uuid REFERENCES oauth_grants (id) ON DELETE SET NULL
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

CREATE TABLE oauth_refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    grant_id    uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    client_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,                         -- rotated: presenting it again is reuse
    revoked_at  timestamptz
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);

-- Access tokens revoked one by one (RFC 7009), kept until they would have expired anyway.
CREATE TABLE oauth_revoked_tokens (
    jti         text PRIMARY KEY,
    client_id   text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX oauth_revoked_tokens_expires ON oauth_revoked_tokens (expires_at);
