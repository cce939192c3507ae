"""Fixtures of the service-hall tests: the BFF on a real loopback port (the department
simulators call its events endpoint back over HTTP), the case desks pointed at it, and
signed-in real-name citizens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from bff.app import create_app
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from hall.seed import seed_department_clients
from identity.staff import StaffAdmin
from identity.staff.passwords import Passwords
from services.departments import CASE_DEPARTMENTS
from services.departments.sms import SmsGateway
from services.simulators import RunningServer, start_in_process
from services.simulators.server import case_desk
from tests.integration.identity.staff.conftest import PASSWORD, Member, sign_in
from tests.support.citizens import bearer, login

ZHANG_SAN = ("13800000001", "张三", "110101199003070011")
LI_SI = ("13800000002", "李四", "110101198512120019")

BIRTH_FORM = {
    "parent_name": "张三",
    "parent_id_number": "110101199003070011",
    "phone": "13800000001",
    "child_name": "张小三",
    "child_birth_date": "2026-11-20",
    "hospital": "市妇幼保健院",
}
NEWBORN_FORM = {**BIRTH_FORM, "relationship": "子"}


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """Fast retries and heartbeats, cheap argon2 for the staff sign-in."""
    hall = msgspec.structs.replace(
        settings.hall, retry_base_s=0.2, retry_max_s=1.0, heartbeat_s=2.0, worker_concurrency=16
    )
    staff = msgspec.structs.replace(settings.staff, argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)
    return msgspec.structs.replace(settings, hall=hall, staff=staff)


@dataclass
class Hall:
    """The BFF served on a port, a client for it, and the case-owning simulators."""

    http: httpx.AsyncClient
    server: RunningServer
    simulators: dict[str, RunningServer]
    settings: Settings

    async def stats(self, department: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.simulators[department].base_url}/_sim/stats")
        body: dict[str, Any] = response.json()
        return body

    async def faults(self, department: str, **faults: Any) -> None:
        url = f"{self.simulators[department].base_url}/_sim/faults"
        response = await (self.http.post(url, json=faults) if faults else self.http.delete(url))
        assert response.status_code == 200


def configure_desks(simulators: dict[str, RunningServer], **options: Any) -> None:
    for name in CASE_DEPARTMENTS:
        desk = case_desk(simulators[name].app)
        assert desk is not None
        desk.configure(**options)


@pytest.fixture
async def hall(
    settings: Settings, clean: None, pool: Pool, vault: Vault, simulators: dict[str, RunningServer]
) -> AsyncIterator[Hall]:
    async with serve_hall(settings, pool, vault, simulators) as running:
        yield running


@contextlib.asynccontextmanager
async def serve_hall(
    settings: Settings, pool: Pool, vault: Vault, simulators: dict[str, RunningServer]
) -> AsyncIterator[Hall]:
    """Serve the BFF on a free port and point the case desks at it."""
    await seed_department_clients(pool, vault)
    server = await start_in_process(create_app(settings))
    configure_desks(simulators, onecity_url=server.base_url, step_delay_s=0.05, auto_progress=True)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as http:
        for name in CASE_DEPARTMENTS:
            await http.delete(f"{simulators[name].base_url}/_sim/faults")
            await http.delete(f"{simulators[name].base_url}/_sim/stats")
        try:
            yield Hall(http=http, server=server, simulators=simulators, settings=settings)
        finally:
            configure_desks(simulators, auto_progress=True)
            await server.stop()
            for name in CASE_DEPARTMENTS:
                desk = case_desk(simulators[name].app)
                assert desk is not None
                await desk.aclose()


async def citizen(http: httpx.AsyncClient, sms: SmsGateway, who: tuple[str, str, str]) -> dict[str, str]:
    """Sign ``who`` in and raise them to L3; the Authorization header."""
    phone, name, id_number = who
    tokens = await login(http, sms, phone)
    headers = bearer(tokens["access_token"])
    verified = await http.post(
        "/v1/me/verification/real-name", json={"name": name, "id_number": id_number}, headers=headers
    )
    assert verified.status_code == 200, verified.text
    # The token's acr is the level at login; a fresh token carries L3.
    refreshed = await http.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    return bearer(refreshed.json()["access_token"])


async def department_token(http: httpx.AsyncClient, department: str) -> dict[str, str]:
    """The department's own client_credentials token (scope ``applications:events``)."""
    client_id = f"dept-{department}"
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "applications:events"},
        auth=(client_id, f"{client_id}-secret"),
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def without_worker(settings: Settings) -> Settings:
    """``settings`` with the hall's job worker off (a test drives cases or events itself)."""
    return msgspec.structs.replace(settings, hall=msgspec.structs.replace(settings.hall, worker=False))


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, every_s: float = 0.1) -> None:
    """Wait until ``check()`` is true, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def staff_admin(pool: Pool, vault: Vault, settings: Settings) -> StaffAdmin:
    return StaffAdmin(pool, vault, passwords=Passwords.from_settings(settings.staff))


async def staff_token(http: httpx.AsyncClient, sms: SmsGateway, admin: StaffAdmin, *, region: str) -> str:
    """A staff member of ``region`` (created now), signed in."""
    username = f"clerk.{region}"
    phone = f"1370000{int(region) % 10000:04d}"
    await admin.add(username, name="Clerk", phone=phone, password=PASSWORD, roles=["admin"], region=region)
    return await sign_in(http, sms, Member(username, phone, region))
