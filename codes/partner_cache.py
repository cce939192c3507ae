"""A short-lived in-process cache of verified partner tokens (the verification hot path)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from identity.partners import PartnerPrincipal

__all__ = ["PartnerCache"]


class PartnerCache:
    """Partner tokens this process verified a moment ago.

    A gate sends the same ``client_credentials`` token with every scan for the token's whole
    life. Verifying it each time (an Ed25519 signature, JWT parsing and a revocation look-up in
    Redis) would cost more than verifying the code itself, so a successful authentication is
    remembered for ``ttl_s`` seconds: a revoked partner token stops working within that time
    (RFC 7009 allows a delay; a forged or expired token is never cached and always checked).

    Args:
        ttl_s: How long a verified token is trusted without re-checking.
        capacity: Most tokens remembered (least recently used go first).
    """

    def __init__(self, *, ttl_s: float = 5.0, capacity: int = 10_000) -> None:
        self._ttl = ttl_s
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], tuple[float, PartnerPrincipal]] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[PartnerPrincipal]] = {}

    def get(self, scope: str, token: str) -> PartnerPrincipal | None:
        """The partner of a recently verified token, if still trusted."""
        entry = self._entries.get((scope, token))
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop((scope, token), None)
            return None
        return entry[1]

    def put(self, scope: str, token: str, partner: PartnerPrincipal) -> None:
        """Remember a successful authentication."""
        self._entries[(scope, token)] = (time.monotonic() + self._ttl, partner)
        self._entries.move_to_end((scope, token))
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    async def authenticate(
        self, scope: str, token: str, check: Callable[[], Awaitable[PartnerPrincipal]]
    ) -> PartnerPrincipal:
        """The cached partner, or ``check()`` run once for every concurrent request with this
        token (a gate fleet starting up must not send a burst of identical checks to Redis).

        Raises:
            Whatever ``check`` raises (401/403), to every waiter; failures are not cached.
        """
        partner = self.get(scope, token)
        if partner is not None:
            return partner
        key = (scope, token)
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled
                return await self.authenticate(scope, token, check)  # the first one went away
        future: asyncio.Future[PartnerPrincipal] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            partner = await check()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._pending.pop(key, None)
        self.put(scope, token, partner)
        future.set_result(partner)
        return partner
