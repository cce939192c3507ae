"""The resilient layer over the real simulators (this package's parent conftest starts them and
clears their faults and stats around every test), with the real Redis test database."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from core.audit import AuditEvent
from core.crypto import Vault
from core.redis import Redis
from services import Departments
from services.fanout import FanoutSettings, ResilientDepartments, build_resilient_departments
from services.simulators import RunningServer

Simulators = dict[str, RunningServer]

FAST = FanoutSettings(deadline_ms=500, default_deadline_ms=800, call_timeout_ms=300, cache_timeout_ms=400)
"""Shorter than production so fault tests run quickly. The cache timeout is longer: on a busy CI
machine a cold Redis connection can take 100 ms, and these tests are about logic, not speed."""


class Collected:
    """An audit sink that keeps the events."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def add(self, event: AuditEvent) -> None:
        self.events.append(event)


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def faults(http: httpx.AsyncClient, simulators: Simulators, department: str, **values: Any) -> None:
    response = await http.post(f"{simulators[department].base_url}/_sim/faults", json=values)
    assert response.status_code == 200, response.text


async def count(http: httpx.AsyncClient, simulators: Simulators, department: str, route: str) -> int:
    requests: dict[str, int] = (await http.get(f"{simulators[department].base_url}/_sim/stats")).json()["requests"]
    return requests.get(route, 0)


LayerFactory = Callable[..., ResilientDepartments]


@pytest.fixture
async def layer(departments: Departments, redis: Redis, vault: Vault) -> AsyncIterator[LayerFactory]:
    """Builds resilient layers (fresh breakers, budgets, flights) over an emptied Redis."""
    await redis.flushdb()
    made: list[ResilientDepartments] = []

    def make(
        settings: FanoutSettings = FAST, *, redis_client: Redis | None = redis, audit: Collected | None = None
    ) -> ResilientDepartments:
        built = build_resilient_departments(
            departments, redis=redis_client, hasher=vault, settings=settings, audit=audit
        )
        made.append(built)
        return built

    yield make
    for built in made:
        await built.aclose()
    await redis.flushdb()
