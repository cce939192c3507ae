"""The home screen as the app is really assembled: the codes domain fills `codes`."""

from __future__ import annotations

from httpx import AsyncClient

from core.crypto import Vault
from core.db import Pool
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
