"""Staff passwords: argon2id (RFC 9106), hashed and checked off the event loop.

argon2 is deliberately slow and memory-hard: staff passwords are chosen by people and
have little entropy, so a stolen hash must be expensive to attack. Each check costs tens of
milliseconds of CPU, so it runs in a worker thread, never on the event loop. An unknown
username is checked against a dummy hash so its answer takes as long as a wrong password
(no username enumeration by timing).
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from identity.staff.settings import StaffSettings

__all__ = ["Passwords"]


class Passwords:
    """Hashes and verifies staff passwords.

    Args:
        hasher: The argon2 hasher (default parameters: RFC 9106 low-memory profile).
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Made on first need (in the worker thread), not at start-up: a hash costs as much
        # as a check, and most processes never see an unknown username.
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: StaffSettings) -> Passwords:
        """A hasher with the configured argon2id parameters."""
        return cls(
            PasswordHasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            )
        )

    def hash(self, password: str) -> str:
        """A new argon2id hash (parameters and salt inside the string)."""
        return self._hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        """:meth:`hash` in a worker thread."""
        return await asyncio.to_thread(self._hasher.hash, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None and self._dummy is None:
            self._dummy = self._hasher.hash("onecity-dummy-password-for-timing")
        try:
            return self._hasher.verify(stored or self._dummy or "", password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored`` (``None``: unknown user, always ``False``)."""
        return await asyncio.to_thread(self._verify, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        """Whether the hash was made with weaker parameters than today's."""
        return self._hasher.check_needs_rehash(stored)
