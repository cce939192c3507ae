"""The screens against the real simulators: a demo citizen at L3, faults cleared around each test.

The simulators are shared by the whole session, so every test starts with zeroed stats and ends
with its faults cleared (which also releases requests a ``hang`` left waiting).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient
from litestar import Litestar, Response, get

from bff.app import create_app
from bff.screens import CodesSummary
from bff.settings import Settings
from codes.status import SharedReads
from core.crypto import Vault
from core.db import Pool
from identity import Principal
from identity.seed import seed_demo_citizens
from services.departments.sms import SmsGateway
from services.fanout import FanoutSettings
from services.simulators import RunningServer, start_in_process
from tests.support.asgi import running_app
from tests.support.citizens import bearer, login

ZHANG_SAN_PHONE = "13800000001"
LI_SI_PHONE = "13800000002"
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


async def no_codes(_: Principal, __: SharedReads | None = None) -> list[Any]:
    return []


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[tuple[Litestar, AsyncTestClient]]]


@pytest.fixture
def make_app(settings: Settings, clean: None, sim: Sim) -> AppFactory:
    """An app with overridden fan-out settings or department URLs (each call: a fresh app)."""

    @contextlib.asynccontextmanager
    async def make(
        fanout: FanoutSettings | None = None, *, codes_summary: CodesSummary | None = None, **urls: str
    ) -> AsyncIterator[tuple[Litestar, AsyncTestClient]]:
        chosen = settings
        if fanout is not None:
            chosen = msgspec.structs.replace(chosen, fanout=fanout)
        if urls:
            chosen = msgspec.structs.replace(chosen, departments=msgspec.structs.replace(chosen.departments, **urls))
        app = create_app(chosen)
        async with running_app(app) as client:
            # The codes domain's summary reads departments too; these tests count department
            # calls, so the home screen's `codes` comes from a stub unless a test passes one.
            app.state.screens.codes_summary = codes_summary or no_codes
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


FAST = FanoutSettings(deadline_ms=500, default_deadline_ms=800, call_timeout_ms=300, cache_timeout_ms=400)
"""Shorter than production so fault tests run quickly. The cache timeout is longer: on a busy CI
machine a cold Redis connection can take 100 ms, and these tests are about logic, not speed."""
MARGIN_S = 0.4
"""Slack allowed above the deadline in timing assertions (never a performance threshold)."""


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a department that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
async def broken_department() -> AsyncIterator[str]:
    """A department that answers every request with a 500 (the simulators only inject 503s)."""

    @get("/{path:path}", sync_to_thread=False)
    def fail(path: str) -> Response[bytes]:
        return Response(b'{"error": "internal"}', status_code=500, media_type="application/json")

    server = await start_in_process(Litestar([fail], openapi_config=None, logging_config=None))
    yield server.base_url
    await server.stop()
