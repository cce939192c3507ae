"""Building the resilient layer over the plain department clients."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from core.redis import Redis
from services.departments import Departments
from services.fanout.departments import (
    ResilientHealthDepartment,
    ResilientSocsecDepartment,
    ResilientTransportDepartment,
)
from services.fanout.guard import AuditSink, GuardedDepartment, KeyedHasher
from services.fanout.pools import DepartmentPools
from services.fanout.settings import FanoutSettings
from services.resilience import SwrCache

__all__ = ["ResilientDepartments", "build_resilient_departments"]


@dataclass(frozen=True, slots=True)
class ResilientDepartments:
    """The guarded health, transport and social-security clients of one app instance.

    Breakers, budgets and in-flight calls live here (per app, never module-global).

    Attributes:
        base: The plain clients it wraps (registry, liveness, SMS and the mini-program platform
            pass through :meth:`as_departments` unchanged: they are writes or one-off checks,
            not cacheable reads).
    """

    health: ResilientHealthDepartment
    transport: ResilientTransportDepartment
    socsec: ResilientSocsecDepartment
    base: Departments
    settings: FanoutSettings
    pools: DepartmentPools | None = None

    def as_departments(self) -> Departments:
        """A :class:`Departments` whose health, transport and socsec are the resilient ones."""
        return dataclasses.replace(self.base, health=self.health, transport=self.transport, socsec=self.socsec)

    async def aclose(self) -> None:
        """Cancel in-flight upstream calls and background refreshes; close owned pools."""
        await asyncio.gather(self.health.guard.aclose(), self.transport.guard.aclose(), self.socsec.guard.aclose())
        if self.pools is not None:
            await self.pools.aclose()


def build_resilient_departments(
    base: Departments,
    *,
    redis: Redis | None,
    hasher: KeyedHasher,
    settings: FanoutSettings | None = None,
    audit: AuditSink | None = None,
    pools: DepartmentPools | None = None,
) -> ResilientDepartments:
    """Wrap ``base``'s health, transport and socsec clients in the resilient read path.

    Args:
        base: The plain clients (from :func:`services.departments.build_departments`).
        redis: The cache's Redis; ``None`` runs without a cache.
        hasher: Keyed hashing for cache keys and audit pseudonyms (the app's ``Vault``).
        settings: Deadlines, timeouts, breaker, retry and TTLs (defaults if ``None``).
        audit: Receives one ``data.read`` event per read (the app's ``AuditBatcher``).
        pools: If given, health, transport and socsec are called over these per-department
            pools instead of ``base``'s client (see :mod:`services.fanout.pools`); the layer
            closes them in :meth:`ResilientDepartments.aclose`.
    """
    settings = settings or FanoutSettings()
    inner = pools.wrap(base) if pools is not None else base
    cache = SwrCache(redis, op_timeout_s=settings.cache_timeout_ms / 1000)

    def guard(name: str) -> GuardedDepartment:
        return GuardedDepartment(name, settings=settings, cache=cache, hasher=hasher, audit=audit)

    return ResilientDepartments(
        health=ResilientHealthDepartment(inner.health, guard("health")),
        transport=ResilientTransportDepartment(inner.transport, guard("transport")),
        socsec=ResilientSocsecDepartment(inner.socsec, guard("socsec")),
        base=base,
        settings=settings,
        pools=pools,
    )
