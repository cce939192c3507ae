"""Access tokens: RFC 9068 JWTs signed with the ``token`` Ed25519 key.

Verification is strict by construction: the algorithm is fixed (``EdDSA``, never taken from
the token), the key comes only from our own ``token`` key set by a ``kid`` of a known shape
(never from ``jku``/``jwk``/``x5u`` headers, which are refused outright), and ``typ`` must
be ``at+jwt`` so an ID token or a code can never pass as an access token.

An app sends the same access token with every request of its ten-minute life, so a token
whose signature and claims checked out is remembered (bounded, least recently used first):
the next request with the very same string skips the JSON parsing and the Ed25519 check, but
not the time checks (expiry, issue time), which are made again against the clock each time,
nor the key's presence in the ring (a retired key stops its tokens at once). Revocation is
checked by the callers on every request, as before.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from typing import Any

import jwt
import msgspec

from core.errors import Unauthorized
from core.keys import KeyManager
from core.structs import FrozenStruct
from identity.settings import IdentitySettings

__all__ = ["ACCESS_TOKEN_TYP", "API_AUDIENCE", "AccessClaims", "AccessTokens"]

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a media type, not a secret
_ACCEPTED_TYP = {"at+jwt", "application/at+jwt"}
_KID = re.compile(r"^token-[0-9]{8}-[0-9a-f]{8}$")
_FORBIDDEN_HEADERS = {"jku", "jwk", "x5u", "x5c", "crit"}
_MAX_TOKEN_CHARS = 4096
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "client_id"]
#: Verified tokens remembered per process (a few hundred bytes each).
_VERIFIED_CAPACITY = 20_000

#: ``aud`` of tokens for OneCity's own partner-facing APIs (code verification, userinfo).
API_AUDIENCE = "onecity-api"


class AccessClaims(FrozenStruct, frozen=True):
    """The claims of a verified access token."""

    iss: str
    aud: str | list[str]
    sub: str
    iat: int
    exp: int
    jti: str
    client_id: str
    sid: str | None = None  # citizen tokens: the session; absent for client_credentials
    acr: str | None = None  # citizen tokens: the identity level
    reverify: bool = False  # citizen tokens: the session must prove the identity again first
    scope: str = ""
    roles: list[str] | None = None  # staff tokens
    region: str | None = None  # staff tokens
    cnf: dict[str, str] | None = None  # partner tokens bound to a DPoP key: {"jkt": thumbprint} (RFC 9449)

    @property
    def jkt(self) -> str | None:
        """The thumbprint of the DPoP key the token is bound to, if any."""
        return self.cnf.get("jkt") if self.cnf else None

    @property
    def scopes(self) -> frozenset[str]:
        """The space-separated ``scope`` claim as a set."""
        return frozenset(self.scope.split())


def _invalid(detail: str = "The access token is invalid") -> Unauthorized:
    return Unauthorized(detail, error="invalid_token")


class AccessTokens:
    """Issues and verifies citizen access tokens.

    Args:
        keys: The process's key manager (``token`` purpose).
        settings: Lifetimes, issuer and audience.
    """

    def __init__(self, keys: KeyManager, settings: IdentitySettings) -> None:
        self._keys = keys
        self._settings = settings
        # (token, audience) -> (claims, kid, the key that verified it)
        self._verified: OrderedDict[tuple[str, str], tuple[AccessClaims, str, object]] = OrderedDict()

    def issue(
        self,
        *,
        subject: str,
        session_id: str | None = None,
        level: str | None = None,
        client_id: str | None = None,
        audience: str | None = None,
        scope: str = "",
        extra: dict[str, Any] | None = None,
        ttl_s: int | None = None,
        now: int | None = None,
    ) -> tuple[str, int]:
        """Sign a new access token; return it and its lifetime in seconds.

        Args:
            subject: The account id for a citizen; the client id for ``client_credentials``.
            session_id: ``sid``: ties the token to a session that can be ended.
            level: ``acr``: the citizen's identity level when the token was issued.
            client_id: The OAuth client the token was issued to (default: the citizen app).
            audience: ``aud`` (default: the citizen app); partners' tokens use ``API_AUDIENCE``.
            scope: Space-separated scopes granted.
            extra: Further claims (e.g. staff roles); may not override the ones above.
            ttl_s: Lifetime (default: the configured access token lifetime).
            now: Issue time (tests).
        """
        issued = int(time.time()) if now is None else now
        ttl = ttl_s or self._settings.access_token_ttl_s
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            {
                "iss": self._settings.issuer,
                "aud": audience or self._settings.audience,
                "sub": subject,
                "client_id": client_id or self._settings.audience,
                "iat": issued,
                "exp": issued + ttl,
                "jti": secrets.token_urlsafe(12),
            }
        )
        if session_id is not None:
            claims["sid"] = session_id
        if level is not None:
            claims["acr"] = level
        if scope:
            claims["scope"] = scope
        return self._keys.signer("token").sign(claims, typ=ACCESS_TOKEN_TYP), ttl

    def _check_times(self, claims: AccessClaims, now: float) -> AccessClaims:
        """PyJWT's expiry rule (``exp`` at or before ``now`` - leeway) and ours on ``iat``."""
        skew = self._settings.clock_skew_s
        if claims.exp <= now - skew:
            raise _invalid("The access token has expired")
        if claims.iat > now + skew:
            raise _invalid()
        return claims

    async def verify(self, token: str, *, audience: str | None = None, now: float | None = None) -> AccessClaims:
        """Verify ``token`` completely or raise :class:`Unauthorized` (``invalid_token``).

        Session revocation is checked separately (:mod:`identity.revocation`), because it
        needs Redis and some callers (introspection) report rather than reject.

        Args:
            token: The compact JWT.
            audience: The ``aud`` required (default: the citizen app's).
            now: The time the token's ``exp`` and ``iat`` are checked against (tests);
                a first verification also has PyJWT check them against the clock.
        """
        aud = audience or self._settings.audience
        moment = time.time() if now is None else now
        cached = self._verified.get((token, aud))
        if cached is not None:
            remembered, cached_kid, cached_key = cached
            # The ring's key objects are replaced on reload: a retired key is gone from it.
            if self._keys.ring.public_key(cached_kid, "token") is cached_key:
                self._verified.move_to_end((token, aud))
                return self._check_times(remembered, moment)
            del self._verified[(token, aud)]
        if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
            raise _invalid()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid() from None
        if _FORBIDDEN_HEADERS & header.keys():
            raise _invalid()
        kid = header.get("kid")
        if (
            header.get("alg") != "EdDSA"
            or str(header.get("typ", "")).lower() not in _ACCEPTED_TYP
            or not isinstance(kid, str)
            or not _KID.fullmatch(kid)
        ):
            raise _invalid()
        key = await self._keys.public_key(kid, "token")
        if key is None:
            raise _invalid()
        try:
            raw = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=aud,
                issuer=self._settings.issuer,
                leeway=self._settings.clock_skew_s,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("The access token has expired") from None
        except jwt.PyJWTError:
            raise _invalid() from None
        try:
            claims = msgspec.convert(raw, AccessClaims)
        except msgspec.ValidationError:
            raise _invalid() from None
        self._check_times(claims, moment)
        if "nbf" not in raw:  # a not-before would need checking again: such tokens are not kept
            self._verified[(token, aud)] = (claims, kid, key)
            if len(self._verified) > _VERIFIED_CAPACITY:
                self._verified.popitem(last=False)
        return claims
