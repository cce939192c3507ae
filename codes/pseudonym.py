"""Per-type pseudonyms of code holders (the ``sub`` claim).

A code's ``sub`` must let the server find the holder again and let a partner recognise the same
holder within one code type, without revealing who it is: never an account id, a phone or an ID
number. It is HMAC-SHA256 of the account id under a key derived from the master key for that
code type alone, truncated to :data:`SUBJECT_BYTES`. The same citizen therefore gets a stable
``sub`` per type, and a transit scanner cannot link its ``sub`` to a health scanner's.
"""

from __future__ import annotations

import hashlib
import hmac

from codes.payload import CodeType
from core.crypto import Vault
from core.signing import b64url_encode

__all__ = ["SUBJECT_BYTES", "Pseudonymizer"]

#: 64 bits (11 base64url characters): what the 320-character payload budget allows next to the
#: ``jti`` (see :mod:`codes.payload`). Collisions among 10 million holders of one type have a
#: probability of about 3e-6; the lead's pseudonym table should still hold a unique index.
SUBJECT_BYTES = 8

_LABEL = b"onecity/codes/subject/v1/"


class Pseudonymizer:
    """Derives the ``sub`` pseudonym of a holder for a code type.

    Args:
        vault: The master-key vault; one subkey per code type is derived from it.
        size: Bytes kept from the HMAC (base64url-encoded); changing it changes every ``sub``.
    """

    __slots__ = ("_keys", "_size")

    def __init__(self, vault: Vault, *, size: int = SUBJECT_BYTES) -> None:
        if not 8 <= size <= 32:
            raise ValueError("pseudonym size must be 8..32 bytes")
        self._size = size
        # Derived once: HKDF per call would dominate the cost of issuing a code.
        self._keys = {kind: vault.derive(_LABEL + kind.value.encode()) for kind in CodeType}

    def subject(self, code_type: CodeType | str, account_id: str) -> str:
        """The holder's pseudonym for ``code_type`` (a :class:`CodeType`, API name or letter).

        Raises:
            ValueError: for an unknown code type or an empty account id.
        """
        if not account_id:
            raise ValueError("account id is empty")
        kind = CodeType.parse(code_type) if isinstance(code_type, str) else code_type
        digest = hmac.new(self._keys[kind], account_id.encode(), hashlib.sha256).digest()
        return b64url_encode(digest[: self._size])
