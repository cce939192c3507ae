"""Two OneCity processes on one PostgreSQL and one Redis behave as one service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager, KeyStore
from core.redis import Redis
from identity.seed import seed_demo_citizens
from identity.tokens import API_AUDIENCE, AccessTokens
from services.departments import DepartmentEndpoints
from services.departments.sms import SmsGateway
from tests.conftest import MASTER_KEY, reset_state
from tests.support.citizens import bearer, latest_otp
from tests.support.processes import server_process

DEVICE = {"id": "d1", "name": "Phone", "platform": "android"}


@pytest.fixture
async def two(
    database_url: str, redis_url: str, department_endpoints: DepartmentEndpoints, pool: Pool, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    await reset_state(pool, redis)
    common: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "master_key": MASTER_KEY,
        "departments": {name: getattr(department_endpoints, name) for name in department_endpoints.__struct_fields__},
        "extra_env": {"ONECITY_AUTH_RATE_PER_MINUTE": "5"},
    }
    async with (
        server_process(**common) as first_url,
        server_process(**common) as second_url,
        httpx.AsyncClient(base_url=first_url) as a,
        httpx.AsyncClient(base_url=second_url) as b,
    ):
        yield a, b


async def _login(a: httpx.AsyncClient, b: httpx.AsyncClient, sms: SmsGateway, phone: str) -> dict[str, Any]:
    assert (await a.post("/v1/auth/otp", json={"phone": phone})).status_code == 202
    code = await latest_otp(sms, phone)
    response = await b.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_refresh_rotated_on_one_is_dead_on_the_other(
    two: tuple[httpx.AsyncClient, httpx.AsyncClient], sms: SmsGateway
) -> None:
    a, b = two
    tokens = await _login(a, b, sms, "13200000001")
    rotated = await a.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert (await b.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 401
    # ... and that reuse ended the family everywhere.
    assert (await a.get("/v1/me", headers=bearer(rotated.json()["access_token"]))).status_code == 401


async def test_session_ended_on_one_is_rejected_on_the_other(
    two: tuple[httpx.AsyncClient, httpx.AsyncClient], sms: SmsGateway
) -> None:
    a, b = two
    tokens = await _login(a, b, sms, "13200000002")
    headers = bearer(tokens["access_token"])
    assert (await b.get("/v1/me", headers=headers)).status_code == 200
    assert (await a.post("/v1/auth/logout", headers=headers)).status_code == 204
    assert (await b.get("/v1/me", headers=headers)).status_code == 401


async def test_rate_limits_are_shared(two: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    a, b = two
    statuses = []
    for i in range(8):  # 5 per minute per address across both instances
        client = a if i % 2 == 0 else b
        statuses.append((await client.post("/v1/auth/otp", json={"phone": f"1320000010{i}"})).status_code)
    assert statuses[:5] == [202] * 5
    assert set(statuses[5:]) == {429}


async def test_transit_code_consumed_on_one_is_replayed_on_the_other(
    two: tuple[httpx.AsyncClient, httpx.AsyncClient],
    sms: SmsGateway,
    pool: Pool,
    vault: Vault,
    key_store: KeyStore,
    settings: Settings,
) -> None:
    a, b = two
    await seed_demo_citizens(pool, vault)  # 张三 at L3: transit codes need real-name level
    citizen = await _login(a, b, sms, "13800000001")
    issued = await b.post("/v1/me/codes/transit", headers=bearer(citizen["access_token"]))
    assert issued.status_code == 200, issued.text
    tokens = AccessTokens(await KeyManager.open(key_store), settings.identity)
    token, _ = tokens.issue(subject="metro-gates", client_id="metro-gates", audience=API_AUDIENCE, scope="codes:verify")
    scan = {"payload": issued.json()["payload"], "consume": True}

    first = await a.post("/v1/codes/verify", json=scan, headers=bearer(token))
    second = await b.post("/v1/codes/verify", json=scan, headers=bearer(token))

    assert first.status_code == 200 and first.json()["valid"] is True, first.text
    assert second.status_code == 200, second.text
    assert second.json()["valid"] is False and second.json()["reason"] == "replayed"
