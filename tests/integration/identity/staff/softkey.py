"""A software FIDO2 authenticator for the tests: an EC P-256 key (``cryptography``) that
answers WebAuthn registration (attestation ``none``) and sign-in (assertion) the way a
browser and a security key would, CBOR-encoded with ``cbor2`` (which py_webauthn uses too).

Nothing in the verification path is replaced: the server verifies these bytes with
py_webauthn exactly as it would a hardware key's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "http://localhost:8000"

_UP, _UV, _AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    """base64url without padding (the WebAuthn JSON encoding)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class SoftAuthenticator:
    """One credential on one software key.

    Args:
        origin: Where the "browser" says the ceremony happened.
        transports: What the key says it supports.
    """

    def __init__(self, origin: str = ORIGIN, transports: tuple[str, ...] = ("usb", "nfc")) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.origin = origin
        self.transports = list(transports)

    def clone(self) -> SoftAuthenticator:
        """A copy of the key and its counter as they are now (what an attacker's clone has)."""
        twin = SoftAuthenticator(self.origin, tuple(self.transports))
        twin.key, twin.credential_id, twin.sign_count = self.key, self.credential_id, self.sign_count
        return twin

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        # COSE_Key: kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y.
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}).encode()

    def create(self, public_key: dict[str, Any]) -> dict[str, Any]:
        """``navigator.credentials.create`` for these options: the RegistrationResponseJSON."""
        rp_id_hash = hashlib.sha256(public_key["rp"]["id"].encode()).digest()
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        auth_data = rp_id_hash + bytes([_UP | _UV | _AT]) + self.sign_count.to_bytes(4, "big") + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", public_key["challenge"])
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": self.transports,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        }

    def get(
        self,
        public_key: dict[str, Any],
        *,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        origin: str | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get``: the AuthenticationResponseJSON (the counter goes up).

        Args:
            public_key: The request options.
            signing_key: Sign with another key (a forgery).
            origin: Claim another origin (a phishing site).
        """
        self.sign_count += 1
        rp_id_hash = hashlib.sha256(public_key["rpId"].encode()).digest()
        auth_data = rp_id_hash + bytes([_UP | _UV]) + self.sign_count.to_bytes(4, "big")
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": public_key["challenge"], "origin": origin or self.origin}
        ).encode()
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = (signing_key or self.key).sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": None,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        }
