"""The home screen as the app is really assembled: the codes domain fills `codes`."""

from __future__ import annotations

from httpx import AsyncClient

from core.crypto import Vault
from core.db import Pool
from core.redis import Redis
from identity.seed import seed_demo_citizens
from services.departments.sms import SmsGateway
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
