"""What a scenario's preparation can reach: the running system's addresses and secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bff.settings import Settings, load_settings
from core.crypto import Vault
from core.redis import Redis, create_redis

__all__ = ["BenchContext"]


@dataclass(frozen=True)
class BenchContext:
    """The system under test, as a scenario's ``prepare`` sees it.

    Attributes:
        base_url: The BFF, e.g. ``http://127.0.0.1:41234``.
        database_url: The run's own database (created for this run, dropped after it).
        redis_url: The Redis database the BFF uses.
        master_key: The run's master key: preparation must hash and encrypt exactly as the
            app does (refresh-token hashes, phone blind indexes, OTP hashes).
        departments: Each department simulator's base URL, by name (for fault injection).
        workdir: A private folder for data files; removed after the run.
        duration_s: Seconds each scenario loads the server (size prepared data from it).
        connections: wrk connections (the most requests in flight at once).
        environment: The ``ONECITY_*`` environment the BFF runs with (its settings).
    """

    base_url: str
    database_url: str
    redis_url: str
    master_key: bytes = field(repr=False)
    departments: Mapping[str, str]
    workdir: Path
    duration_s: int
    connections: int
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    @cached_property
    def vault(self) -> Vault:
        """The app's vault under the run's master key."""
        return Vault(self.master_key)

    @cached_property
    def settings(self) -> Settings:
        """The BFF's settings, read from the environment it was started with (issuer, city,
        lifetimes): preparation signs and hashes exactly as the server would."""
        return load_settings(self.environment)

    def http(self, *, connections: int = 32) -> httpx.AsyncClient:
        """A client for the BFF (close it when done)."""
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits)

    async def connect(self) -> asyncpg.Connection[Any]:
        """A direct connection to the run's database (close it when done)."""
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self.database_url, timeout=10)
        return conn

    def redis(self) -> Redis:
        """A client for the run's Redis database (``aclose()`` it when done); the Cluster client
        when the BFF runs against a Redis Cluster (``ONECITY_REDIS_CLUSTER``)."""
        return create_redis(self.redis_url, max_connections=32, cluster=self.settings.redis.cluster)

    async def set_faults(self, department: str, **faults: Any) -> None:
        """Make a department simulator misbehave (``latency_ms``, ``error_rate``, ``hang``, ...)."""
        async with httpx.AsyncClient(base_url=self.departments[department], timeout=5) as http:
            (await http.post("/_sim/faults", json=faults)).raise_for_status()

    async def clear_faults(self, department: str) -> None:
        """Make a department simulator behave again."""
        async with httpx.AsyncClient(base_url=self.departments[department], timeout=5) as http:
            (await http.delete("/_sim/faults")).raise_for_status()
