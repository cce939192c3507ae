"""ID tokens and the identity claims a grant may release.

An ID token is a JWT (``typ: JWT``) signed with the ``token`` key, ``aud`` the client id. It
is never accepted as an access token: :mod:`identity.tokens` requires ``typ: at+jwt``. Its
``at_hash`` follows OIDC Core section 3.1.3.6 with the hash of the signing algorithm; for
EdDSA over Ed25519 that is SHA-512 (as OpenID Connect clients, Authlib among them, expect).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Mapping
from typing import Any

from core.crypto import Vault
from core.keys import KeyManager
from core.signing import b64url_encode
from identity.masking import mask_name
from identity.pii import Pii

__all__ = ["ID_TOKEN_TYP", "IdTokens", "at_hash", "release_claims"]

ID_TOKEN_TYP = "JWT"  # noqa: S105 - a media type, not a secret


def at_hash(access_token: str) -> str:
    """Left half of SHA-512 of the access token, base64url (EdDSA with Ed25519)."""
    digest = hashlib.sha512(access_token.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def release_claims(
    *,
    scopes: Collection[str],
    options: Mapping[str, Any],
    vault: Vault,
    level: str,
    phone_enc: bytes | None,
    name_enc: bytes | None,
) -> dict[str, Any]:
    """The claims the consented ``scopes`` release, and nothing else.

    Args:
        scopes: Granted (consented) scopes.
        options: Consent options of the grant: ``full_name`` for ``profile``.
        vault: Decrypts the name and phone.
        level: The account's identity level.
        phone_enc: Encrypted phone.
        name_enc: Encrypted real name (absent below ``L3``: then no ``name`` claim).
    """
    claims: dict[str, Any] = {}
    pii = Pii(vault)
    if "profile" in scopes and name_enc is not None:
        name = pii.name.open(name_enc)
        claims["name"] = name if options.get("full_name") else mask_name(name)
    if "phone" in scopes and phone_enc is not None:
        claims["phone_number"] = "+86" + pii.phone.open(phone_enc)
        claims["phone_number_verified"] = True
    if "identity.level" in scopes:
        claims["identity_level"] = level
    return claims


class IdTokens:
    """Signs ID tokens.

    Args:
        keys: The process's key manager (``token`` purpose).
        issuer: ``iss``.
        ttl_s: Lifetime.
    """

    def __init__(self, keys: KeyManager, *, issuer: str, ttl_s: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._ttl = ttl_s

    def issue(
        self,
        *,
        client_id: str,
        subject: str,
        auth_time: int,
        acr: str,
        amr: Collection[str],
        nonce: str | None,
        access_token: str | None,
        claims: Mapping[str, Any],
    ) -> str:
        """An ID token for ``client_id`` about ``subject`` (its pairwise ``sub``)."""
        now = int(time.time())
        body: dict[str, Any] = dict(claims)
        body.update(
            {
                "iss": self._issuer,
                "sub": subject,
                "aud": client_id,
                "iat": now,
                "exp": now + self._ttl,
                "auth_time": auth_time,
                "acr": acr,
                "amr": list(amr),
            }
        )
        if nonce is not None:
            body["nonce"] = nonce
        if access_token is not None:
            body["at_hash"] = at_hash(access_token)
        return self._keys.signer("token").sign(body, typ=ID_TOKEN_TYP)
