"""DPoP (RFC 9449): proofs of possession that sender-constrain partners' tokens.

A client that sends a ``DPoP`` header with its token request gets an access token carrying
``cnf.jkt`` (the RFC 7638 thumbprint of the key that signed the proof) and ``token_type``
``DPoP``; every later use of that token (userinfo, introspection answers, code verification)
needs a fresh proof signed by the same key over the request's method and URL and the token's
hash (``ath``). A thief of the token alone cannot use it.

A proof is checked completely (RFC 9449 section 4.3): one ``DPoP`` header, ``typ``
``dpop+jwt``, an asymmetric ``alg`` (``EdDSA``/``Ed25519``/``ES256``), a *public* ``jwk`` in
the header whose key verifies the signature, ``htm``/``htu`` matching the request, ``iat``
within a short window, and a ``jti`` never seen before in that window (Redis, ``SET NX``).

Server nonces (section 8) are stateless: an HMAC of the current time slot under a key derived
from the master key, so every instance accepts every other instance's nonce without Redis.
A nonce is valid for its slot and the next one. The authorization server (token and PAR
endpoints) requires one; a proof without it gets ``use_dpop_nonce`` and the ``DPoP-Nonce``
header, which client libraries (openid-client, Authlib) answer by retrying once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from core.crypto import Vault
from core.redis import Redis
from core.signing import b64url_encode
from core.structs import FrozenStruct
from identity.oidc.errors import OAuthError

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPError",
    "DPoPProof",
    "DPoPVerifier",
    "PresentationError",
    "access_token_hash",
    "dpop_error",
    "jwk_thumbprint",
]

#: Proof algorithms accepted, with the JWK key type (and curve) each needs.
DPOP_ALGORITHMS: Mapping[str, tuple[str, str]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
}
#: RFC 7638 required members of each key type, in the order the thumbprint hashes them.
_THUMBPRINT_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_MAX_PROOF_CHARS = 4096
_NONCE_SLOT_S = 300


class DPoPError(Exception):
    """A proof was missing, invalid or needs a server nonce.

    Args:
        error: ``invalid_dpop_proof`` or ``use_dpop_nonce``.
        description: Fixed text (never the proof).
    """

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class PresentationError(Exception):
    """A protected resource refuses how an access token was presented (RFC 9449 section 7).

    Args:
        error: ``invalid_token`` or ``invalid_dpop_proof`` (or ``use_dpop_nonce``).
        description: Fixed text.
        headers: ``WWW-Authenticate`` (a ``DPoP`` challenge) and ``DPoP-Nonce``.
    """

    def __init__(self, error: str, description: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.headers = dict(headers)


class DPoPProof(FrozenStruct, frozen=True):
    """A verified proof: the key's thumbprint and the proof's identifiers."""

    jkt: str
    jti: str
    iat: int


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url) of an OKP or EC public key.

    Raises:
        DPoPError: the key type is not one we accept or a member is missing.
    """
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise DPoPError("invalid_dpop_proof", "The proof's key is not a supported public key")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(token: str) -> str:
    """The ``ath`` of an access token: base64url(SHA-256(token))."""
    return b64url_encode(hashlib.sha256(token.encode("ascii", "replace")).digest())


def _normalise_url(url: str) -> str:
    # RFC 9449 section 4.3 step 9: compare without query and fragment; scheme and host are
    # case-insensitive (RFC 3986 section 6.2.2.1).
    base = url.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = base.partition("://")
    if not sep:
        return base
    authority, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{authority.lower()}{slash}{path}"


class DPoPVerifier:
    """Checks DPoP proofs and makes server nonces.

    Args:
        redis: Remembers each proof's ``jti`` for the acceptance window.
        vault: Derives the nonce key.
        max_age_s: How old (by ``iat``) a proof may be.
        clock_skew_s: Tolerance for a client clock ahead of ours.
    """

    def __init__(self, redis: Redis, vault: Vault, *, max_age_s: int, clock_skew_s: int) -> None:
        self._redis = redis
        self._nonce_key = vault.derive(b"onecity/oidc/dpop-nonce/v1")
        self._max_age = max_age_s
        self._skew = clock_skew_s

    # nonces -------------------------------------------------------------------------------

    def _nonce_for(self, slot: int) -> str:
        raw = slot.to_bytes(8, "big")
        return b64url_encode(raw + hmac.new(self._nonce_key, raw, hashlib.sha256).digest()[:16])

    def nonce(self) -> str:
        """The current server nonce (send it as ``DPoP-Nonce``)."""
        return self._nonce_for(int(time.time()) // _NONCE_SLOT_S)

    def _nonce_ok(self, nonce: object) -> bool:
        if not isinstance(nonce, str) or len(nonce) != 32:
            return False
        slot = int(time.time()) // _NONCE_SLOT_S
        return any(hmac.compare_digest(nonce, self._nonce_for(s)) for s in (slot, slot - 1))

    # proofs -------------------------------------------------------------------------------

    async def verify(
        self,
        headers: Sequence[str],
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        require_nonce: bool = False,
    ) -> DPoPProof:
        """Verify the request's ``DPoP`` header(s) for ``method`` and ``url``.

        Args:
            headers: Every ``DPoP`` header value of the request (exactly one is allowed).
            method: The HTTP method (``htm``).
            url: The request URL as the client addressed it (``htu``).
            access_token: At a protected resource, the token presented (``ath`` must match).
            require_nonce: Whether the proof must carry a current server nonce.

        Raises:
            DPoPError: ``invalid_dpop_proof`` or ``use_dpop_nonce``.
        """
        if len(headers) != 1:
            raise DPoPError("invalid_dpop_proof", "Send exactly one DPoP proof")
        proof = headers[0].strip()
        if not proof or len(proof) > _MAX_PROOF_CHARS or proof.count(".") != 2:
            raise DPoPError("invalid_dpop_proof", "The DPoP proof is malformed")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise DPoPError("invalid_dpop_proof", "The DPoP proof is malformed") from None
        alg = header.get("alg")
        jwk = header.get("jwk")
        if header.get("typ") != "dpop+jwt":
            raise DPoPError("invalid_dpop_proof", "The DPoP proof's typ must be dpop+jwt")
        if not isinstance(alg, str) or alg not in DPOP_ALGORITHMS:
            raise DPoPError("invalid_dpop_proof", "Unsupported DPoP proof algorithm")
        if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():
            raise DPoPError("invalid_dpop_proof", "The DPoP proof needs a public jwk header")
        kty, crv = DPOP_ALGORITHMS[alg]
        if jwk.get("kty") != kty or jwk.get("crv") != crv:
            raise DPoPError("invalid_dpop_proof", "The DPoP key does not match the algorithm")
        jkt = jwk_thumbprint(jwk)
        try:
            key = jwt.PyJWK(jwk, algorithm="EdDSA" if kty == "OKP" else "ES256")
            claims: dict[str, Any] = jwt.decode(
                proof,
                key.key,
                algorithms=[alg],
                leeway=self._skew,
                options={"require": ["jti", "htm", "htu", "iat"], "verify_aud": False, "verify_iat": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise DPoPError("invalid_dpop_proof", "The DPoP proof's signature or claims are invalid") from None
        jti, iat = claims["jti"], claims["iat"]
        if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
            raise DPoPError("invalid_dpop_proof", "The DPoP proof's jti is invalid")
        if claims["htm"] != method or not isinstance(claims["htu"], str):
            raise DPoPError("invalid_dpop_proof", "The DPoP proof is for another method")
        if _normalise_url(claims["htu"]) != _normalise_url(url):
            raise DPoPError("invalid_dpop_proof", "The DPoP proof is for another URL")
        now = time.time()
        if not isinstance(iat, int) or iat > now + self._skew or iat < now - self._max_age - self._skew:
            raise DPoPError("invalid_dpop_proof", "The DPoP proof is too old or from the future")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
                raise DPoPError("invalid_dpop_proof", "The DPoP proof is not for this access token")
        if require_nonce and not self._nonce_ok(claims.get("nonce")):
            raise DPoPError("use_dpop_nonce", "Authorization server requires nonce in DPoP proof")
        # Single use within the window in which the proof could pass at all.
        digest = hashlib.sha256(f"{jkt}\x00{jti}".encode()).digest()
        replay_key = "oc:oidc:dpop:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
        fresh = await self._redis.set(replay_key, b"1", nx=True, ex=self._max_age + 2 * self._skew + 1)
        if not fresh:
            raise DPoPError("invalid_dpop_proof", "The DPoP proof was already used")
        return DPoPProof(jkt=jkt, jti=jti, iat=iat)

    # protected resources ------------------------------------------------------------------

    def challenge(self, error: str, description: str) -> dict[str, str]:
        """The ``DPoP`` challenge (RFC 9449 section 7.1) and a fresh nonce."""
        algs = " ".join(DPOP_ALGORITHMS)
        return {
            "WWW-Authenticate": f'DPoP error="{error}", error_description="{description}", algs="{algs}"',
            "DPoP-Nonce": self.nonce(),
        }

    async def check_presentation(
        self,
        *,
        scheme: str,
        token: str,
        jkt: str | None,
        proofs: Sequence[str],
        method: str,
        url: str,
    ) -> None:
        """Check that a token was presented as its binding requires.

        A DPoP-bound token (``jkt``) must come with the ``DPoP`` scheme and a proof by its key
        over this request and this token; an unbound token must not claim the ``DPoP`` scheme.

        Raises:
            PresentationError: with the challenge headers to send.
        """
        if jkt is None:
            if scheme == "dpop":
                raise self._refused("invalid_token", "This access token is not DPoP-bound: use the Bearer scheme")
            return
        if scheme != "dpop":
            raise self._refused(
                "invalid_token", "This access token is DPoP-bound: present it with the DPoP scheme and a proof"
            )
        try:
            proof = await self.verify(proofs, method=method, url=url, access_token=token)
        except DPoPError as exc:
            raise self._refused(exc.error, exc.description) from None
        if not hmac.compare_digest(proof.jkt, jkt):
            raise self._refused("invalid_dpop_proof", "The DPoP proof was made with another key than the token's")

    def _refused(self, error: str, description: str) -> PresentationError:
        return PresentationError(error, description, self.challenge(error, description))


def dpop_error(exc: DPoPError, nonce: str) -> OAuthError:
    """An authorization-server DPoP error (RFC 9449 sections 5.1 and 8): 400 with a fresh nonce."""
    return OAuthError(exc.error, exc.description, headers={"DPoP-Nonce": nonce})
