"""Ed25519 JWS signing and JWK helpers shared by every key purpose.

Tokens, codes and service calls are all compact JWS objects signed with Ed25519
(``alg: EdDSA``). This module holds the one signer type and the JWK conversions;
where keys live and how they rotate is :mod:`core.keys`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import jwt
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

    Args:
        kid: Key id written to the JWS header so verifiers pick the right public key.
        private_key: The Ed25519 private key.
    """

    __slots__ = ("kid", "private_key", "public_key")

    def __init__(self, kid: str, private_key: Ed25519PrivateKey) -> None:
        self.kid = kid
        self.private_key = private_key
        self.public_key = private_key.public_key()

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """Return a compact JWS over ``claims`` with header ``{alg, kid, typ}``."""
        return jwt.encode(dict(claims), self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": typ})

    def jwk(self, *, use: str = "sig") -> dict[str, str]:
        """The public half of this signer as a JWK."""
        return public_key_to_jwk(self.public_key, kid=self.kid, use=use)
