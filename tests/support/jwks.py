"""How the simulators under test learn the BFF's service keys.

Real departments fetch ``/.well-known/jwks.json``; in tests the BFF runs in-process (no
port), so the simulators read the same public keys straight from the test database's key
store. The key store code is the production one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.keys import KeyStore

__all__ = ["KeyStoreJwks"]


class KeyStoreJwks:
    """A ``JwksSource`` answering from the key store: current ``service`` public keys."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        """The service public key ``kid``, if it verifies now."""
        ring = await self._store.load()
        return ring.public_key(kid, "service")
