"""Field encryption and blind indexes under the master key.

Phones and ID numbers are stored as AES-256-GCM ciphertext and found through a keyed
blind index (HMAC-SHA256), so the database never holds them in clear and equality look-ups
still work. Every purpose derives its own subkey from the one master key with HKDF, so a
leaked index key cannot decrypt and one index cannot be joined with another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import OperatorError

__all__ = ["DecryptionError", "MasterKeyError", "Vault", "parse_master_key"]

_NONCE_BYTES = 12


class MasterKeyError(OperatorError, ValueError):
    """The master key is missing, malformed, or not the one the data was encrypted with."""


class DecryptionError(OperatorError, ValueError):
    """A ciphertext failed authentication: wrong key, wrong context, or tampered data."""


def parse_master_key(text: str | None) -> bytes:
    """Decode ``ONECITY_MASTER_KEY`` (32 bytes, base64 or base64url, padding optional).

    Raises:
        MasterKeyError: when it is absent or not exactly 32 bytes. The message never echoes
            the value.
    """
    if not text:
        raise MasterKeyError("ONECITY_MASTER_KEY is not set (32 random bytes, base64url)")
    try:
        raw = base64.urlsafe_b64decode(
            text.strip().replace("+", "-").replace("/", "_") + "=" * (-len(text.strip()) % 4)
        )
    except (ValueError, TypeError) as exc:
        raise MasterKeyError("ONECITY_MASTER_KEY is not valid base64") from exc
    if len(raw) != 32:
        raise MasterKeyError(f"ONECITY_MASTER_KEY must decode to 32 bytes, got {len(raw)}")
    return raw


class Vault:
    """Encrypts, decrypts and blind-indexes small values under subkeys of one master key.

    Args:
        master_key: 32 random bytes (see :func:`parse_master_key`).
    """

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise MasterKeyError("master key must be 32 bytes")
        self._master = master_key
        self._aead = AESGCM(self.derive(b"onecity/aead/v1"))
        self._index_keys: dict[str, bytes] = {}

    def derive(self, label: bytes, length: int = 32) -> bytes:
        """Derive an independent subkey for ``label`` (HKDF-SHA256)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(self._master)

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt ``plaintext``; ``context`` is bound as associated data (e.g. ``"phone"``),
        so a ciphertext moved to another column fails to decrypt."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> bytes:
        """Reverse :meth:`encrypt`.

        Raises:
            DecryptionError: if the key or the context is wrong or the data was altered.
        """
        try:
            return self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("ciphertext did not authenticate") from exc

    def encrypt_text(self, text: str, *, context: str) -> bytes:
        """:meth:`encrypt` for a UTF-8 string."""
        return self.encrypt(text.encode(), context=context)

    def decrypt_text(self, blob: bytes, *, context: str) -> str:
        """:meth:`decrypt` to a UTF-8 string."""
        return self.decrypt(blob, context=context).decode()

    def blind_index(self, value: str, *, domain: str) -> bytes:
        """Keyed, deterministic 32-byte digest of ``value`` for equality look-ups.

        ``domain`` separates indexes (``"phone"``, ``"id_number"``) so equal strings in two
        domains never share an index value.
        """
        key = self._index_keys.get(domain)
        if key is None:
            key = self._index_keys[domain] = self.derive(b"onecity/blind-index/" + domain.encode())
        return hmac.new(key, value.encode(), hashlib.sha256).digest()

    def keyed_hash(self, value: bytes | str, *, domain: str) -> bytes:
        """Alias of :meth:`blind_index` for secrets stored only as a keyed hash (OTPs, tokens)."""
        text = value.decode() if isinstance(value, bytes) else value
        return self.blind_index(text, domain=domain)
