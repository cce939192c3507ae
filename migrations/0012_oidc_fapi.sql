-- FAPI 2.0 for the partners that ask for it (issue 11).
-- require_par: the client's authorization requests must come through POST /oauth/par (RFC 9126).
-- dpop_bound: every access token of the client is sender-constrained with DPoP (RFC 9449).
ALTER TABLE oauth_clients
    ADD COLUMN require_par boolean NOT NULL DEFAULT false,
    ADD COLUMN dpop_bound  boolean NOT NULL DEFAULT false;

-- The JWK SHA-256 thumbprint (RFC 7638) a grant's refresh tokens are bound to: set when a
-- public client redeemed its code with a DPoP proof (RFC 9449 section 5), so a stolen
-- refresh token is useless without the key.
ALTER TABLE oauth_grants
    ADD COLUMN dpop_jkt text CHECK (dpop_jkt IS NULL OR dpop_jkt ~ '^[A-Za-z0-9_-]{43}$');

-- A code issued for a pushed request that carried a DPoP proof (or dpop_jkt) is bound to
-- that key: redeeming it needs a proof by the same key (RFC 9449 section 10).
ALTER TABLE oauth_codes
    ADD COLUMN dpop_jkt text CHECK (dpop_jkt IS NULL OR dpop_jkt ~ '^[A-Za-z0-9_-]{43}$');
