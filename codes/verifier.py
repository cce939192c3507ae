"""Offline verifier for OneCity city-service codes (``OC1:`` + compact JWS, EdDSA).

This module is deliberately self-contained: it imports only the Python standard library and
``cryptography``, so a partner can copy this one file into a scanner or gate and verify codes
without network access, using the JWKS published at ``GET /v1/codes/keys``::

    import json
    from verifier import load_jwks, verify_code

    keys = load_jwks(json.load(open("codes-keys.json")))
    result = verify_code(scanned_text, keys, expected_types={"health"}, trusted_issuers={"cs"})
    if result.valid:
        print(result.claims["st"])   # G / Y / R
    else:
        print(result.reason)         # e.g. "expired"

It checks the signature, the header, the claim shapes, the code type, the issuer and the time
window. Revocation and one-time use (reasons ``revoked`` and ``replayed``) need the server's
state and are only decided online by ``POST /v1/codes/verify``.

The payload format is a fixed contract (``docs/codes-for-partners.md``): keep this file in step
with it and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "API_NAMES",
    "CODE_TYPES",
    "DEFAULT_SKEW_S",
    "HOLDER_CODE_TYPES",
    "MAX_HOLDER_LIFETIME_S",
    "MAX_PAYLOAD_CHARS",
    "PREFIX",
    "REASONS",
    "STATUSES",
    "TYP",
    "Verification",
    "load_jwks",
    "normalize_code_types",
    "verify_code",
]

#: Every code starts with this; the version lives in the prefix, not in the JWS header.
PREFIX = "OC1:"
#: The JWS ``typ`` header of a code. A token (``typ`` ``at+jwt``/``JWT``) never passes as a code.
TYP = "oc1"
#: The whole string, prefix included, fits a QR code of version <= 13 at error correction M.
MAX_PAYLOAD_CHARS = 320
#: ``exp - iat`` upper bound for codes a citizen shows (everything but venue codes).
MAX_HOLDER_LIFETIME_S = 300
#: Default tolerance for clocks of scanners that are a little off.
DEFAULT_SKEW_S = 30

#: Code type letters (claim ``ct``) by API name.
API_NAMES: Mapping[str, str] = {"health": "H", "transit": "T", "socsec": "S", "citizen": "C", "venue": "V"}
CODE_TYPES = frozenset(API_NAMES.values())
#: Codes shown by a citizen, whose life is bounded by :data:`MAX_HOLDER_LIFETIME_S`.
HOLDER_CODE_TYPES = frozenset({"H", "T", "S", "C"})
#: Allowed ``st`` values per ``ct``: health green/yellow/red, the rest active/suspended.
STATUSES: Mapping[str, frozenset[str]] = {
    "H": frozenset({"G", "Y", "R"}),
    "T": frozenset({"A", "X"}),
    "S": frozenset({"A", "X"}),
    "C": frozenset({"A", "X"}),
    "V": frozenset({"A", "X"}),
}
#: Reason slugs this module can return (the server adds ``revoked`` and ``replayed``).
REASONS = frozenset({"malformed", "unknown_key", "bad_signature", "expired", "not_yet_valid", "wrong_type"})

# Header parameters that point at or embed a key, or change how the JWS is processed. A code
# is only ever verified with a key from the published JWKS, so any of these is an attack (or a
# mistake) and the code is refused rather than the parameter ignored.
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64", "zip"})
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_ED25519_SIGNATURE_BYTES = 64
_LETTER_TO_API = {letter: name for name, letter in API_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of :func:`verify_code`.

    Attributes:
        valid: True only if every check passed.
        reason: ``None`` when valid, else one slug of :data:`REASONS`.
        claims: The decoded claims whenever the signature checked out and the claims are
            well-formed, even if the code is invalid for another reason (expired, wrong type,
            untrusted issuer), so a server can log which code was refused. Act on them only
            when ``valid`` is true.
    """

    valid: bool
    reason: str | None
    claims: dict[str, Any] | None = None

    @property
    def code_type(self) -> str | None:
        """The API name of the code type (``health``, ``transit``...), if claims are known."""
        if self.claims is None:
            return None
        return _LETTER_TO_API.get(self.claims.get("ct", ""))


def _fail(reason: str, claims: dict[str, Any] | None = None) -> Verification:
    return Verification(valid=False, reason=reason, claims=claims)


def _b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: refuses padding, stray characters and non-canonical forms.

    The canonical check matters because base64 ignores the low bits of the last character:
    without it, several strings would decode to one signature and a "different" code could
    be minted from a scanned one.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise ValueError("non-canonical base64url")
    return raw


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may pick different copies of a duplicated member; refuse the ambiguity.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _json_object(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int; true/false is not a timestamp.
    return isinstance(value, int) and not isinstance(value, bool)


def _claims_ok(claims: Mapping[str, Any]) -> bool:
    """Shape check of the claims table in the payload contract."""
    for name in ("iss", "ct", "sub", "st", "jti"):
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            return False
    ct = claims["ct"]
    if ct not in CODE_TYPES or claims["st"] not in STATUSES[ct]:
        return False
    iat, exp = claims.get("iat"), claims.get("exp")
    if not _is_int(iat) or not _is_int(exp) or exp <= iat:
        return False
    if ct in HOLDER_CODE_TYPES and exp - iat > MAX_HOLDER_LIFETIME_S:
        return False
    return "rv" not in claims or (_is_int(claims["rv"]) and claims["rv"] >= 0)


def normalize_code_types(types: Collection[str]) -> frozenset[str]:
    """Turn API names (``health``) or letters (``H``) into a set of ``ct`` letters.

    Raises:
        ValueError: for a name that is neither.
    """
    letters = set()
    for item in types:
        letter = API_NAMES.get(item, item)
        if letter not in CODE_TYPES:
            raise ValueError(f"unknown code type {item!r}")
        letters.add(letter)
    return frozenset(letters)


def load_jwks(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """Build a ``kid -> public key`` mapping from a JWKS document (RFC 7517).

    Only ``kty: OKP`` / ``crv: Ed25519`` keys with a ``kid`` are kept; keys of other types, keys
    marked for encryption (``use: enc``) or for another algorithm are skipped, so a mixed JWKS
    can be passed as is.

    Args:
        jwks: The parsed JSON of ``GET /v1/codes/keys``: ``{"keys": [...]}``.

    Returns:
        A dict usable as the ``keys`` argument of :func:`verify_code`.

    Raises:
        ValueError: if the document is not a JWKS, an Ed25519 key is broken, or two different
            keys share a ``kid`` (which key would verify would be a guess).
    """
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError('a JWKS is an object with a "keys" array')
    ring: dict[str, Ed25519PublicKey] = {}
    raw_by_kid: dict[str, bytes] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "EdDSA") != "EdDSA":
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if not isinstance(kid, str) or not kid:
            continue  # a code always names its key; an unnamed key can never be selected
        try:
            raw = _b64url_decode(x) if isinstance(x, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"key {kid!r}: x is not a 32-byte base64url Ed25519 public key")
        if kid in raw_by_kid and raw_by_kid[kid] != raw:
            raise ValueError(f"two different keys share kid {kid!r}")
        raw_by_kid[kid] = raw
        ring[kid] = Ed25519PublicKey.from_public_bytes(raw)
    return ring


def verify_code(
    payload: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    now: float | None = None,
    skew_s: int = DEFAULT_SKEW_S,
    expected_types: Collection[str] | None = None,
    trusted_issuers: Collection[str] | None = None,
) -> Verification:
    """Verify a scanned code offline.

    Checks, in order: size and prefix, JWS structure, header (``alg`` exactly ``EdDSA``, ``typ``
    ``oc1``, a ``kid``, no key-carrying headers), key look-up, Ed25519 signature, claim shapes
    and lifetime, issuer, code type, and finally the time window.

    Args:
        payload: The QR text, ``OC1:<header>.<claims>.<signature>``.
        keys: ``kid -> Ed25519PublicKey`` of the code-signing keys (see :func:`load_jwks`).
        now: Unix time to check against; the system clock if omitted.
        skew_s: Clock tolerance in seconds, applied to ``iat`` and ``exp``.
        expected_types: Code types this scanner accepts, as API names or letters; any if
            omitted.
        trusted_issuers: ``iss`` values this scanner accepts; any issuer whose key is in
            ``keys`` if omitted.

    Returns:
        A :class:`Verification`; this function never raises for bad input.
    """
    wanted = normalize_code_types(expected_types) if expected_types is not None else None
    if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS or not payload.startswith(PREFIX):
        return _fail("malformed")
    parts = payload[len(PREFIX) :].split(".")
    if len(parts) != 3:
        return _fail("malformed")
    header_b64, claims_b64, signature_b64 = parts
    try:
        header = _json_object(_b64url_decode(header_b64))
        signature = _b64url_decode(signature_b64)
    except ValueError:  # includes JSON and UTF-8 errors
        return _fail("malformed")
    # Compare exactly: "none", "NONE", "HS256", "eddsa"... are all refused before any key use.
    if header.get("alg") != "EdDSA" or header.get("typ") != TYP or _FORBIDDEN_HEADERS & header.keys():
        return _fail("malformed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(signature) != _ED25519_SIGNATURE_BYTES:
        return _fail("malformed")
    key = keys.get(kid)
    if key is None:
        return _fail("unknown_key")
    try:
        key.verify(signature, f"{header_b64}.{claims_b64}".encode("ascii"))
    except InvalidSignature:
        return _fail("bad_signature")
    # Claims are parsed only once they are known to be authentic.
    try:
        claims = _json_object(_b64url_decode(claims_b64))
    except ValueError:
        return _fail("malformed")
    if not _claims_ok(claims):
        return _fail("malformed")
    if trusted_issuers is not None and claims["iss"] not in trusted_issuers:
        return _fail("unknown_key", claims)
    if wanted is not None and claims["ct"] not in wanted:
        return _fail("wrong_type", claims)
    moment = time.time() if now is None else now
    if claims["iat"] > moment + skew_s:
        return _fail("not_yet_valid", claims)
    if moment >= claims["exp"] + skew_s:
        return _fail("expired", claims)
    return Verification(valid=True, reason=None, claims=claims)
