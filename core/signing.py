"""Ed25519 JWS signing and JWK helpers shared by every key purpose.

Tokens, codes and service calls are all compact JWS objects signed with Ed25519
(``alg: EdDSA``). This module holds the one signer type and the JWK conversions;
where keys live and how they rotate is :mod:`core.keys`.
"""

from __future__ import annotations

import base64
import json
from calendar import timegm
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ALGORITHM",
    "Ed25519Signer",
    "b64url_decode",
    "b64url_encode",
    "public_key_from_jwk",
    "public_key_to_jwk",
]

ALGORITHM = "EdDSA"
_TIME_CLAIMS = ("exp", "iat", "nbf")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ``ValueError`` on bad input."""
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def public_key_to_jwk(public_key: Ed25519PublicKey, *, kid: str, use: str = "sig") -> dict[str, str]:
    """Render an Ed25519 public key as an RFC 8037 OKP JWK."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw), "kid": kid, "use": use, "alg": ALGORITHM}


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """Parse an OKP/Ed25519 JWK; raises ``ValueError`` for any other key type."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("not an Ed25519 OKP key")
    raw = b64url_decode(jwk["x"])
    if len(raw) != 32:
        raise ValueError("Ed25519 public key must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


class Ed25519Signer:
    """Signs JWT claims with one Ed25519 private key, naming it by ``kid``.

    The compact JWS is built here with ``cryptography`` directly, byte for byte what
    ``jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": typ})`` returns
    (the same sorted header, the same JSON of the claims): the header segment of each ``typ``
    is encoded once, and PyJWT's per-call layers (algorithm look-up, key preparation, header
    validation) are a third of a token's signing time.

    Args:
        kid: Key id written to the JWS header so verifiers pick the right public key.
        private_key: The Ed25519 private key.
    """

    __slots__ = ("_headers", "kid", "private_key", "public_key")

    def __init__(self, kid: str, private_key: Ed25519PrivateKey) -> None:
        self.kid = kid
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self._headers: dict[str, bytes] = {}

    def _header(self, typ: str) -> bytes:
        """The encoded header segment for ``typ`` (PyJWT's: keys sorted, no spaces)."""
        segment = self._headers.get(typ)
        if segment is None:
            header = {"alg": ALGORITHM, "kid": self.kid, "typ": typ}
            if not typ:
                del header["typ"]
            text = json.dumps(header, separators=(",", ":"), sort_keys=True)
            segment = self._headers[typ] = base64.urlsafe_b64encode(text.encode()).rstrip(b"=")
        return segment

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """Return a compact JWS over ``claims`` with header ``{alg, kid, typ}``.

        Raises:
            TypeError: If ``iss`` is not a string (as PyJWT), or a claim is not JSON.
        """
        payload = dict(claims)
        for name in _TIME_CLAIMS:
            value = payload.get(name)
            if isinstance(value, datetime):
                payload[name] = timegm(value.utctimetuple())
        if "iss" in payload and not isinstance(payload["iss"], str):
            raise TypeError("Issuer (iss) must be a string.")
        body = json.dumps(payload, separators=(",", ":")).encode()
        signing_input = self._header(typ) + b"." + base64.urlsafe_b64encode(body).rstrip(b"=")
        signature = base64.urlsafe_b64encode(self.private_key.sign(signing_input)).rstrip(b"=")
        return (signing_input + b"." + signature).decode("ascii")

    def jwk(self, *, use: str = "sig") -> dict[str, str]:
        """The public half of this signer as a JWK."""
        return public_key_to_jwk(self.public_key, kid=self.kid, use=use)
