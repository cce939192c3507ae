"""Service tokens: the short-lived JWTs OneCity presents to the departments.

Every department call carries ``Authorization: Bearer <service token>`` (DESIGN, "Department
contracts"): an EdDSA JWT with header ``typ: svc+jwt`` and the claims ``iss`` (``"onecity"``),
``aud`` (the department), ``sub`` (the citizen's ID number, or ``"onecity"`` for calls on nobody's
behalf), ``scope``, ``purpose``, ``iat``, ``exp`` (at most 60 s after ``iat``) and a random
``jti``. The citizen's ID number travels only here, never in a URL.

:class:`ServiceTokenMinter` is the BFF side; :class:`ServiceTokenVerifier` is the department side
(used by the simulators, and the reference for real departments), with two key sources:
:class:`StaticJwks` for tests and :class:`UrlJwks` for the BFF's published JWKS.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import httpx
import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import Unauthorized
from core.signing import ALGORITHM, public_key_from_jwk

__all__ = [
    "MAX_LIFETIME_S",
    "SERVICE_SUBJECT",
    "SERVICE_TOKEN_TYP",
    "InvalidServiceToken",
    "JwksSource",
    "ServiceTokenMinter",
    "ServiceTokenVerifier",
    "StaticJwks",
    "TokenSigner",
    "UrlJwks",
    "VerifiedServiceToken",
]

SERVICE_TOKEN_TYP: Final = "svc+jwt"  # noqa: S105 - a JWS type, not a secret
"""The JWS ``typ`` of service tokens, so an access token or a code is never accepted as one."""

SERVICE_SUBJECT: Final = "onecity"
"""The ``sub`` of calls made on no citizen's behalf (SMS, mini-program code exchange)."""

MAX_LIFETIME_S: Final = 60
"""Upper bound of ``exp - iat``: a leaked token is worth at most a minute."""

_REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "scope", "purpose", "iat", "exp", "jti")
_MAX_TOKEN_CHARS: Final = 4096  # far above a real token; bounds the work an attacker can cause


class TokenSigner(Protocol):
    """Signs claims as a compact JWS; :class:`core.signing.Ed25519Signer` is one."""

    kid: str

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """Return a compact JWS over ``claims`` with header ``{alg, kid, typ}``."""
        ...


class ServiceTokenMinter:
    """Mints service tokens with whichever signing key is current.

    Args:
        signer_provider: Returns the current signer. Called on every mint, because keys rotate
            and the BFF's key store hands out the newest one.
        issuer: The ``iss`` claim.
        lifetime_s: Seconds from ``iat`` to ``exp``; 1 to 60.
    """

    __slots__ = ("_issuer", "_lifetime_s", "_signer_provider")

    def __init__(
        self,
        signer_provider: Callable[[], TokenSigner],
        *,
        issuer: str = "onecity",
        lifetime_s: int = MAX_LIFETIME_S,
    ) -> None:
        if not 1 <= lifetime_s <= MAX_LIFETIME_S:
            raise ValueError(f"lifetime_s must be between 1 and {MAX_LIFETIME_S}")
        self._signer_provider = signer_provider
        self._issuer = issuer
        self._lifetime_s = lifetime_s

    def mint(self, *, audience: str, subject: str, scope: str, purpose: str) -> str:
        """Return a fresh service token.

        Args:
            audience: The department the token is for (``health``, ``sms``, ...).
            subject: The citizen's ID number, or :data:`SERVICE_SUBJECT`.
            scope: What is asked, e.g. ``"health:tests"``.
            purpose: Why it is asked, e.g. ``"home-screen"``; the department logs it.
        """
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": subject,
            "scope": scope,
            "purpose": purpose,
            "iat": now,
            "exp": now + self._lifetime_s,
            "jti": secrets.token_urlsafe(16),
        }
        return self._signer_provider().sign(claims, typ=SERVICE_TOKEN_TYP)


class VerifiedServiceToken(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a verified service token a department acts on."""

    subject: str
    scope: str
    purpose: str
    jti: str


class InvalidServiceToken(Unauthorized):
    """The presented service token is not acceptable.

    Args:
        reason: A stable slug (``missing``, ``malformed``, ``bad_algorithm``, ``wrong_type``,
            ``unknown_key``, ``bad_signature``, ``wrong_audience``, ``wrong_issuer``, ``expired``,
            ``not_yet_valid``, ``lifetime_too_long``, ``missing_claim``). Never the token itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid service token: {reason}")
        self.reason = reason


class JwksSource(Protocol):
    """Looks up the verification key for a ``kid``."""

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        """The Ed25519 public key named ``kid``, or ``None`` if unknown."""
        ...


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """Extract the usable Ed25519 keys of a JWKS, skipping anything else in it."""
    keys: dict[str, Ed25519PublicKey] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        return keys
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry["kid"]] = public_key_from_jwk(entry)
        except ValueError:
            continue  # other key types or broken entries are not ours to verify with
    return keys


class StaticJwks:
    """A fixed set of keys, from a JWKS document (``{"keys": [...]}``).

    Args:
        jwks: The JWKS document.
    """

    __slots__ = ("_keys",)

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = _parse_jwks(jwks)

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        """The key named ``kid``, or ``None``."""
        return self._keys.get(kid)


class _JwksDocument(msgspec.Struct):
    keys: list[dict[str, Any]]


class UrlJwks:
    """Keys fetched from a JWKS URL (the BFF's ``/.well-known/jwks.json``), cached.

    The document is fetched on first use and again every ``refresh_s``. An unknown ``kid``
    (a key the BFF has just rotated in) triggers an early refetch, at most every
    ``min_refetch_s`` so a flood of forged kids cannot hammer the BFF. A failed fetch keeps the
    previous keys and reports the kid as unknown: a department answers 401, it never crashes.

    Args:
        url: The JWKS URL.
        http: The HTTP client to fetch with; its owner closes it.
        refresh_s: Maximum age of the cached document.
        min_refetch_s: Minimum spacing of fetches caused by unknown kids.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        refresh_s: float = 300.0,
        *,
        min_refetch_s: float = 2.0,
    ) -> None:
        self._url = url
        self._http = http
        self._refresh_s = refresh_s
        self._min_refetch_s = min_refetch_s
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()  # one fetch at a time; waiters reuse its result

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        """The key named ``kid``, fetching the JWKS when stale or when ``kid`` is unknown."""
        # A fetch already under way is waited for: a caller that arrives during the first fetch
        # must not be told "unknown key" just because that fetch has not finished yet.
        if self._lock.locked() or self._stale() or (kid not in self._keys and self._may_refetch()):
            async with self._lock:
                # Re-check under the lock: a concurrent caller may just have fetched.
                if self._stale() or (kid not in self._keys and self._may_refetch()):
                    await self._fetch()
        return self._keys.get(kid)

    def _stale(self) -> bool:
        if self._fetched_at is None:
            return self._may_refetch()
        return time.monotonic() - self._fetched_at >= self._refresh_s and self._may_refetch()

    def _may_refetch(self) -> bool:
        return self._attempted_at is None or time.monotonic() - self._attempted_at >= self._min_refetch_s

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            response = await self._http.get(self._url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = msgspec.json.decode(response.content, type=_JwksDocument)
        except (httpx.HTTPError, msgspec.DecodeError):
            return  # the keys held stay; unknown kids stay unknown until the next attempt
        self._keys = _parse_jwks({"keys": document.keys})
        self._fetched_at = time.monotonic()


class ServiceTokenVerifier:
    """Verifies the service tokens addressed to one department.

    Args:
        audience: This department's name; tokens for any other ``aud`` are refused.
        jwks: Where the issuer's public keys come from.
        issuer: The only accepted ``iss``.
        leeway_s: Clock skew tolerated on ``iat`` and ``exp``.
    """

    __slots__ = ("_audience", "_issuer", "_jwks", "_leeway_s")

    def __init__(self, audience: str, jwks: JwksSource, *, issuer: str = "onecity", leeway_s: int = 5) -> None:
        self._audience = audience
        self._jwks = jwks
        self._issuer = issuer
        self._leeway_s = leeway_s

    async def verify(self, authorization_header: str | None) -> VerifiedServiceToken:
        """Check an ``Authorization`` header value and return the token's claims.

        Raises:
            InvalidServiceToken: For anything but a valid, current ``Bearer`` service token
                issued to this department.
        """
        token = self._bearer(authorization_header)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidServiceToken("malformed") from None
        # Pin the algorithm from our side before any key is touched: this is what stops
        # "alg: none" and HS256-with-the-public-key confusion.
        if header.get("alg") != ALGORITHM:
            raise InvalidServiceToken("bad_algorithm")
        if header.get("typ") != SERVICE_TOKEN_TYP:
            raise InvalidServiceToken("wrong_type")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidServiceToken("unknown_key")
        key = await self._jwks.key(kid)
        if key is None:
            raise InvalidServiceToken("unknown_key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": list(_REQUIRED_CLAIMS), "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise InvalidServiceToken(_reason(exc)) from None
        return self._claims(claims)

    @staticmethod
    def _bearer(authorization_header: str | None) -> str:
        if not authorization_header:
            raise InvalidServiceToken("missing")
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidServiceToken("missing")
        if len(token) > _MAX_TOKEN_CHARS:
            raise InvalidServiceToken("malformed")
        return token

    @staticmethod
    def _claims(claims: Mapping[str, Any]) -> VerifiedServiceToken:
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise InvalidServiceToken("malformed")
        if exp - iat > MAX_LIFETIME_S:
            raise InvalidServiceToken("lifetime_too_long")
        fields = {name: claims[name] for name in ("sub", "scope", "purpose", "jti")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise InvalidServiceToken("missing_claim")
        return VerifiedServiceToken(
            subject=fields["sub"], scope=fields["scope"], purpose=fields["purpose"], jti=fields["jti"]
        )


def _reason(exc: jwt.PyJWTError) -> str:
    """Map a PyJWT failure onto a stable reason slug."""
    # Order matters: several of these subclass each other (e.g. InvalidAudienceError).
    mapping: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not_yet_valid"),
        (jwt.InvalidAudienceError, "wrong_audience"),
        (jwt.InvalidIssuerError, "wrong_issuer"),
        (jwt.MissingRequiredClaimError, "missing_claim"),
        (jwt.InvalidSignatureError, "bad_signature"),
        (jwt.InvalidAlgorithmError, "bad_algorithm"),
    )
    for cls, reason in mapping:
        if isinstance(exc, cls):
            return reason
    return "malformed"
