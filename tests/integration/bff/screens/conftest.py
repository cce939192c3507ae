"""The screens against the real simulators: a demo citizen at L3, faults cleared around each test.

The simulators are shared by the whole session, so every test starts with zeroed stats and ends
with its faults cleared (which also releases requests a ``hang`` left waiting).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient
from litestar import Litestar

from bff.app import create_app
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from identity.seed import seed_demo_citizens
from services.departments.sms import SmsGateway
from services.fanout import FanoutSettings
from services.simulators import RunningServer
from tests.support.asgi import running_app
from tests.support.citizens import bearer, login

ZHANG_SAN_PHONE = "13800000001"
SCREEN_DEPARTMENTS = ("health", "transport", "socsec")

Simulators = dict[str, RunningServer]


class Sim:
    """Faults and stats of the three screen simulators."""

    def __init__(self, simulators: Simulators, http: httpx.AsyncClient) -> None:
        self.simulators = simulators
        self.http = http

    def url(self, department: str) -> str:
        return self.simulators[department].base_url

    async def faults(self, department: str, **faults: Any) -> None:
        response = await self.http.post(f"{self.url(department)}/_sim/faults", json=faults)
        assert response.status_code == 200, response.text

    async def clear(self, department: str | None = None) -> None:
        for name in (department,) if department else SCREEN_DEPARTMENTS:
            (await self.http.delete(f"{self.url(name)}/_sim/faults")).raise_for_status()

    async def reset_stats(self) -> None:
        for name in SCREEN_DEPARTMENTS:
            (await self.http.delete(f"{self.url(name)}/_sim/stats")).raise_for_status()

    async def count(self, department: str, route: str) -> int:
        requests: dict[str, int] = (await self.http.get(f"{self.url(department)}/_sim/stats")).json()["requests"]
        return requests.get(route, 0)


@pytest.fixture
async def sim(simulators: Simulators) -> AsyncIterator[Sim]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        control = Sim(simulators, http)
        await control.clear()
        await control.reset_stats()
        try:
            yield control
        finally:
            await control.clear()


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[tuple[Litestar, AsyncTestClient]]]


@pytest.fixture
def make_app(settings: Settings, clean: None, sim: Sim) -> AppFactory:
    """An app with overridden fan-out settings or department URLs (each call: a fresh app)."""

    @contextlib.asynccontextmanager
    async def make(
        fanout: FanoutSettings | None = None, **urls: str
    ) -> AsyncIterator[tuple[Litestar, AsyncTestClient]]:
        chosen = settings
        if fanout is not None:
            chosen = msgspec.structs.replace(chosen, fanout=fanout)
        if urls:
            chosen = msgspec.structs.replace(chosen, departments=msgspec.structs.replace(chosen.departments, **urls))
        app = create_app(chosen)
        async with running_app(app) as client:
            yield app, client

    return make


@pytest.fixture
def citizen(pool: Pool, vault: Vault, sms: SmsGateway) -> Callable[[AsyncTestClient], Awaitable[dict[str, str]]]:
    """Seed the demo citizens (L3) and log 张三 in; returns his Authorization header."""

    async def sign_in(client: AsyncTestClient, phone: str = ZHANG_SAN_PHONE) -> dict[str, str]:
        await seed_demo_citizens(pool, vault)
        tokens = await login(client, sms, phone)
        return bearer(tokens["access_token"])

    return sign_in
