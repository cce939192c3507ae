"""The home screen as the app is really assembled: the codes domain fills `codes`."""

from __future__ import annotations

import asyncio
from typing import Any

from httpx import AsyncClient

from core.crypto import Vault
from core.db import Pool
from core.redis import Redis
from identity.seed import seed_demo_citizens
from services.departments.sms import SmsGateway
from tests.integration.bff.screens.conftest import Sim
from tests.support.citizens import bearer, login


async def test_home_carries_the_citizens_codes(client: AsyncClient, sms: SmsGateway, pool: Pool, vault: Vault) -> None:
    await seed_demo_citizens(pool, vault)
    headers = bearer((await login(client, sms, "13800000002"))["access_token"])  # 李四: red
    body = (await client.get("/v1/me/home", headers=headers)).json()
    assert body["sections"]["health"]["state"] == "ok"
    codes = {c["type"]: c for c in body["codes"]}
    assert {"health", "transit", "socsec", "citizen"} <= set(codes)
    assert codes["health"]["status"] == "R"


async def test_home_codes_are_reused_briefly_and_survive_a_redis_flush(
    client: AsyncClient, sms: SmsGateway, pool: Pool, vault: Vault, redis: Redis
) -> None:
    await seed_demo_citizens(pool, vault)
    headers = bearer((await login(client, sms, "13800000001"))["access_token"])  # 张三: green
    first = (await client.get("/v1/me/home", headers=headers)).json()["codes"]
    decided = await pool.fetchval("SELECT max(decided_at) FROM holder_status")
    second = (await client.get("/v1/me/home", headers=headers)).json()["codes"]
    assert second == first
    # Served from the summary cache: nothing was decided (or written) again.
    assert await pool.fetchval("SELECT max(decided_at) FROM holder_status") == decided
    await redis.flushdb()
    third = (await client.get("/v1/me/home", headers=headers)).json()["codes"]
    assert {c["type"]: c["status"] for c in third} == {c["type"]: c["status"] for c in first}


async def test_a_cold_home_reads_each_department_resource_once(
    client: AsyncClient, sms: SmsGateway, pool: Pool, vault: Vault, sim: Sim
) -> None:
    await seed_demo_citizens(pool, vault)
    headers = bearer((await login(client, sms, "13800000001"))["access_token"])  # 张三: green
    await sim.reset_stats()
    body = (await client.get("/v1/me/home", headers=headers)).json()
    assert {s["state"] for s in body["sections"].values()} == {"ok"}
    assert body["codes_state"] == "ready"
    codes = {c["type"]: c for c in body["codes"]}
    assert (codes["health"]["status"], codes["transit"]["status"], codes["socsec"]["status"]) == ("G", "A", "A")
    calls = {
        (department, route): await sim.count(department, route)
        for department, route in (
            ("health", "GET /v1/me/tests"),
            ("health", "GET /v1/me/risk"),
            ("health", "GET /v1/me/vaccinations"),
            ("transport", "GET /v1/me/card"),
            ("socsec", "GET /v1/me/card"),
        )
    }
    assert set(calls.values()) == {1}, f"the codes summary decided from the screen's reads: {calls}"
    # Both purposes are on the citizen's record: the screen's read, and the codes' use of it.
    items: list[dict[str, Any]] = []
    for _ in range(50):
        items = (await client.get("/v1/me/data-access?limit=100", headers=headers)).json()["items"]
        if len(items) >= 9:
            break
        await asyncio.sleep(0.05)
    seen = sorted((i["department"], i["resource"], i["purpose"], i["source"]) for i in items)
    assert seen == [
        ("health", "risk", "health_code", "shared"),
        ("health", "risk", "home-screen", "department"),
        ("health", "tests", "health_code", "shared"),
        ("health", "tests", "home-screen", "department"),
        ("health", "vaccinations", "health_code", "department"),
        ("socsec", "card", "home-screen", "department"),
        ("socsec", "card", "socsec_code", "shared"),
        ("transport", "card", "home-screen", "department"),
        ("transport", "card", "transit_code", "shared"),
    ]
