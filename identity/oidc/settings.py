"""Settings of the OpenID Connect provider: lifetimes, limits and caches."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.settings import Seconds, refuse

__all__ = ["OidcSettings"]


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes in seconds.

    Attributes:
        code_ttl_s: Authorization code lifetime; at most 60 (OAuth 2.0 Security BCP).
        access_token_ttl_s: Access tokens issued to partners for a citizen.
        client_token_ttl_s: ``client_credentials`` access tokens (partner machine access).
        refresh_idle_ttl_s: A partner refresh token dies unused after this long.
        grant_ttl_s: Absolute lifetime of a grant (every token descended from one code).
        id_token_ttl_s: ID token lifetime.
        assertion_max_lifetime_s: ``private_key_jwt``: how far in the future an assertion's
            ``exp`` may be (a longer-lived assertion is a replayable credential).
        client_cache_ttl_s: Client records are cached in-process this long, so the token and
            introspection endpoints usually need no database round trip. It bounds how long a
            ``clients disable`` or ``rotate-secret`` takes to reach every process.
        browser_tx_ttl_s: How long a browser has to finish signing in and consenting.
        browser_session_ttl_s: Single sign-on in the browser: a citizen who signed in on the
            login page is not asked again for this long (unless ``prompt=login``/``max_age``).
        clock_skew_s: Tolerance for ``iat``/``exp`` of client assertions and DPoP proofs.
        par_ttl_s: How long a pushed authorization request's ``request_uri`` lives (RFC 9126).
        dpop_proof_max_age_s: How old (by ``iat``) a DPoP proof may be; its ``jti`` is
            remembered this long (plus the skew) to refuse replays.
    """

    code_ttl_s: int = 60
    access_token_ttl_s: Seconds = 600
    client_token_ttl_s: Seconds = 600
    refresh_idle_ttl_s: Seconds = 14 * 24 * 3600
    grant_ttl_s: Seconds = 90 * 24 * 3600
    id_token_ttl_s: Seconds = 600
    assertion_max_lifetime_s: Seconds = 300
    client_cache_ttl_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    browser_tx_ttl_s: Seconds = 600
    browser_session_ttl_s: Seconds = 1800
    clock_skew_s: Annotated[int, msgspec.Meta(ge=0, le=300)] = 30
    par_ttl_s: int = 60
    dpop_proof_max_age_s: int = 60

    def __post_init__(self) -> None:
        if not 1 <= self.code_ttl_s <= 60:
            raise refuse("code_ttl_s", "must be between 1 and 60 seconds")
        if self.assertion_max_lifetime_s > 600:
            raise refuse("assertion_max_lifetime_s", "must be at most 600 seconds")
        if not 10 <= self.par_ttl_s <= 600:
            raise refuse("par_ttl_s", "must be between 10 and 600 seconds")
        if not 5 <= self.dpop_proof_max_age_s <= 300:
            raise refuse("dpop_proof_max_age_s", "must be between 5 and 300 seconds")
