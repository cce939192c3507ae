"""Pairwise subject identifiers (OpenID Connect Core section 8.1).

Each client sees a citizen under its own ``sub``: an HMAC of the client's sector and the
account id, under a key derived from the master key. It is stable (the same partner always
sees the same value), cannot be reversed without the key, and two partners' values for one
citizen share nothing, so their records cannot be joined on it.
"""

from __future__ import annotations

import hashlib
import hmac

from core.crypto import Vault
from core.signing import b64url_encode

__all__ = ["PairwiseSubjects"]


class PairwiseSubjects:
    """Computes pairwise ``sub`` values.

    Args:
        vault: Derives the pairwise key (``onecity/oidc/pairwise/v1``).
    """

    __slots__ = ("_key",)

    def __init__(self, vault: Vault) -> None:
        self._key = vault.derive(b"onecity/oidc/pairwise/v1")

    def subject(self, sector_id: str, account_id: str) -> str:
        """The ``sub`` of ``account_id`` for clients of ``sector_id`` (43 base64url characters)."""
        digest = hmac.new(self._key, f"{sector_id}\x00{account_id}".encode(), hashlib.sha256).digest()
        return b64url_encode(digest)
