"""A connection pool per fanned-out department.

Why: httpx's pool (httpcore 1.0) walks every pooled connection, and for each of them counts the
idle ones again, every time a request starts or ends: the cost per request grows with the
square of the connections in the pool (encode/httpx#3215). One pool shared by every department
holds the connections of all of them, so a burst of home screens (4 calls each) makes that pool
large and the client burns CPU on bookkeeping. A pool per department keeps each small, and a
department that hangs can only exhaust its own connections. Measured before and after in
``docs/fanout.md``; the better fixes (HTTP/2 to the departments, or an aiohttp transport) need a
new dependency.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

import httpx
import msgspec

from services.departments import DepartmentEndpoints, Departments, build_departments
from services.tls import department_tls_context
from services.tokens import ServiceTokenMinter

__all__ = ["FANOUT_DEPARTMENTS", "DepartmentPools", "PoolSettings"]

FANOUT_DEPARTMENTS = ("health", "transport", "socsec")


class PoolSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Connection limits of each department's pool."""

    max_connections: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    max_keepalive: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 20
    keepalive_expiry_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30.0
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0


class DepartmentPools:
    """One ``httpx.AsyncClient`` per fanned-out department; close with :meth:`aclose`.

    Args:
        endpoints: Where the departments live.
        minter: Mints the service tokens.
        settings: Pool limits.
    """

    def __init__(
        self, endpoints: DepartmentEndpoints, minter: ServiceTokenMinter, settings: PoolSettings | None = None
    ) -> None:
        chosen = settings or PoolSettings()
        self.endpoints = endpoints
        self.minter = minter
        # The read timeout is a backstop only: the fan-out bounds every attempt itself.
        self.clients = {
            name: httpx.AsyncClient(
                timeout=httpx.Timeout(5.0, connect=chosen.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=chosen.max_connections,
                    max_keepalive_connections=chosen.max_keepalive,
                    keepalive_expiry=chosen.keepalive_expiry_s,
                ),
                follow_redirects=False,
                verify=department_tls_context(),
            )
            for name in FANOUT_DEPARTMENTS
        }

    def wrap(self, base: Departments) -> Departments:
        """``base`` with health, transport and socsec clients on their own pools."""
        own = {name: build_departments(self.endpoints, http, self.minter) for name, http in self.clients.items()}
        return dataclasses.replace(
            base, health=own["health"].health, transport=own["transport"].transport, socsec=own["socsec"].socsec
        )

    async def aclose(self) -> None:
        """Close every pool."""
        await asyncio.gather(*(client.aclose() for client in self.clients.values()))
