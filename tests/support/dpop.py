"""DPoP proofs (RFC 9449) made the way a client library makes them, for tests."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["DPoPKey", "post_with_nonce"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DPoPKey:
    """A client's DPoP key pair: ``EdDSA``/``Ed25519`` (Ed25519) or ``ES256`` (P-256)."""

    def __init__(self, alg: str = "EdDSA") -> None:
        self.alg = alg
        self.private: Any
        if alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            numbers = self.private.public_key().public_numbers()
            self.jwk = {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64(numbers.x.to_bytes(32, "big")),
                "y": _b64(numbers.y.to_bytes(32, "big")),
            }
            members = ("crv", "kty", "x", "y")
        else:
            self.private = Ed25519PrivateKey.generate()
            raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
            members = ("crv", "kty", "x")
        canonical = json.dumps({m: self.jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
        self.jkt = _b64(hashlib.sha256(canonical.encode()).digest())

    def proof(
        self,
        method: str,
        url: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
        iat: int | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A signed proof for one request (``header``/``claims`` override, for attacks)."""
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if nonce is not None:
            body["nonce"] = nonce
        if access_token is not None:
            body["ath"] = _b64(hashlib.sha256(access_token.encode()).digest())
        body.update(claims or {})
        headers: dict[str, Any] = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        signing_alg = "ES256" if self.alg == "ES256" else "EdDSA"
        headers["alg"] = headers.get("alg", self.alg)
        return jwt.encode(body, self.private, algorithm=signing_alg, headers=headers)


async def post_with_nonce(
    client: httpx.AsyncClient, url: str, key: DPoPKey, *, data: dict[str, str], **kwargs: Any
) -> httpx.Response:
    """POST with a DPoP proof; on ``use_dpop_nonce`` retry once with the server's nonce."""
    first = await client.post(url, data=data, headers={"DPoP": key.proof("POST", url)}, **kwargs)
    if first.status_code != 400 or first.json().get("error") != "use_dpop_nonce":
        return first
    nonce = first.headers["dpop-nonce"]
    return await client.post(url, data=data, headers={"DPoP": key.proof("POST", url, nonce=nonce)}, **kwargs)
