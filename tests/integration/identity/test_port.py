"""Identity's port: what other domains and the benchmark use instead of identity's tables and
vault contexts (account facts for codes, bulk accounts and login codes for load preparation)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.context import BenchContext
from bench.fixtures import create_citizens, create_sessions, issue_otps
from bff.app import create_app
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyStore
from core.redis import Redis
from identity import AccountFacts, IdentityService, NewCitizen, insert_signed_in, issue_login_codes
from tests.conftest import MASTER_KEY
from tests.support.asgi import running_app
from tests.support.citizens import bearer

ID_NUMBER = "110101199003070011"
DEVICE = {"id": "device-1", "name": "Test phone", "platform": "ios"}


async def test_bulk_accounts_are_signed_in_as_after_a_login(
    settings: Settings, clean: None, pool: Pool, vault: Vault
) -> None:
    citizens = [
        NewCitizen(phone="13700000201", device_id="bulk-1"),
        NewCitizen(phone="13700000202", device_id="bulk-2", name="张三", id_number=ID_NUMBER),
    ]
    async with pool.acquire() as conn:
        signed = await insert_signed_in(conn, vault, settings.identity, citizens, refresh_tokens=True)
    assert [s.level for s in signed] == ["L2", "L3"]
    app = create_app(settings)
    async with running_app(app) as client:
        refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": signed[1].refresh_token})
        assert refreshed.status_code == 200, refreshed.text
        body: dict[str, Any] = refreshed.json()
        assert body["account"]["level"] == "L3" and body["account"]["id"] == signed[1].account_id
        assert body["account"]["name"] == "张*" and body["account"]["phone"] == "137****0202"
        sessions = (await client.get("/v1/me/sessions", headers=bearer(body["access_token"]))).json()["sessions"]
        assert [(s["id"], s["device_name"], s["current"]) for s in sessions] == [
            (signed[1].session_id, "Bench phone", True)
        ]
        identity: IdentityService = app.state.identity
        assert await identity.account_facts(signed[1].account_id) == AccountFacts(
            account_id=signed[1].account_id,
            level="L3",
            masked_name="张*",
            id_number=ID_NUMBER,
            region_code="110101",
        )
        assert await identity.account_facts(signed[0].account_id) == AccountFacts(
            account_id=signed[0].account_id, level="L2", masked_name=None, id_number=None, region_code=None
        )
        assert await identity.account_facts(str(uuid.uuid4())) is None


async def test_bulk_login_codes_log_in_and_keep_the_send_limits(
    settings: Settings, clean: None, vault: Vault, redis: Redis
) -> None:
    phone = "13700000203"
    (code,) = await issue_login_codes(redis, vault, settings.identity, [phone])
    # The same cool-down as POST /v1/auth/otp: a second code within a minute is refused.
    with pytest.raises(RuntimeError, match="cooldown"):
        await issue_login_codes(redis, vault, settings.identity, [phone])
    async with running_app(create_app(settings)) as client:
        login = await client.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
        assert login.status_code == 200, login.text
        assert login.json()["account"]["level"] == "L2"


async def test_one_login_entry_point_needs_a_device_exactly_for_the_app(settings: Settings, clean: None) -> None:
    app = create_app(settings)
    async with running_app(app):
        identity: IdentityService = app.state.identity
        with pytest.raises(ValueError, match="device"):
            await identity.login_with_otp("13700000204", "123456", channel="app", client_ip=None)


async def test_benchmark_preparation_makes_data_the_app_accepts(
    settings: Settings, clean: None, key_store: KeyStore, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # The benchmark's fixtures go through identity's bulk functions: what they prepare must
    # be what the server reads (sessions, refresh tokens, real-name citizens, login codes).
    ctx = BenchContext(
        base_url="http://127.0.0.1:1",
        database_url=database_url,
        redis_url=redis_url,
        master_key=MASTER_KEY,
        departments={},
        workdir=tmp_path,
        duration_s=1,
        connections=1,
        environment={
            "ONECITY_ENV": "test",
            "ONECITY_DATABASE_URL": database_url,
            "ONECITY_REDIS_URL": redis_url,
            "ONECITY_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode(),
        },
    )
    (refresh_token,) = await create_sessions(ctx, 1, phone_prefix="17")
    (citizen,) = await create_citizens(ctx, 1, pool=0)
    ((phone, code),) = await issue_otps(ctx, 1, phone_prefix="15")
    async with running_app(create_app(settings)) as client:
        refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["account"]["level"] == "L2"
        me = await client.get("/v1/me", headers=bearer(citizen.access_token))
        assert me.status_code == 200, me.text
        assert me.json()["level"] == "L3" and me.json()["id"] == citizen.account_id
        assert me.json()["id_number"] == citizen.id_number[:4] + "*" * 10 + citizen.id_number[-4:]
        login = await client.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
        assert login.status_code == 200, login.text
