"""Staff sign in separately: password (argon2) plus an SMS code; short-lived staff tokens."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.cli import main as onecity
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.errors import Unauthorized
from core.keys import KeyManager, KeyStore
from core.redis import Redis
from identity.revocation import RevocationSet
from identity.staff import StaffAdmin, StaffAdminError
from identity.staff.permissions import authenticate_staff
from identity.tokens import AccessTokens
from services.departments.sms import SmsGateway
from tests.integration.identity.staff.conftest import PASSWORD, Member, sign_in
from tests.support.citizens import bearer, latest_otp, login


async def test_password_then_security_key_then_token(
    client: AsyncTestClient, sms: SmsGateway, officer: Member, pool: Pool
) -> None:
    token = await sign_in(client, sms, officer)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "onecity-staff" and claims["client_id"] == "onecity-staff"
    assert claims["roles"] == ["health_officer"] and claims["region"] == "110101"
    assert claims["amr"] == ["pwd", "hwk", "mfa"]
    assert claims["exp"] - claims["iat"] <= 900
    me = await client.get("/v1/staff/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json() == {
        "id": claims["sub"],
        "username": "officer.dongcheng",
        "name": "Officer Wang",
        "roles": ["health_officer"],
        "region": "110101",
        "region_level": "district",
    }
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-5:] == [
        "staff.login.password",  # no key yet: an SMS code
        "staff.login.enrolment",
        "staff.authenticator.registered",
        "staff.login.password",  # now the key
        "staff.login",
    ]
    assert await pool.fetchval("SELECT last_login_at IS NOT NULL FROM staff") is True


async def test_wrong_password_and_unknown_user_look_the_same(
    client: AsyncTestClient, sms: SmsGateway, officer: Member
) -> None:
    before = len((await sms.outbox(officer.phone)).messages)
    wrong = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": "nope"})
    unknown = await client.post("/v1/staff/login/password", json={"username": "nobody.here", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert len((await sms.outbox(officer.phone)).messages) == before  # no code for a wrong password


async def test_no_redis_key_names_the_address_of_a_sign_in(
    client: AsyncTestClient, officer: Member, pool: Pool, redis: Redis
) -> None:
    wrong = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": "x"})
    assert wrong.status_code == 401
    address = await pool.fetchval("SELECT client_ip FROM audit_log WHERE action = 'staff.login.password'")
    assert address
    names = [name async for name in redis.scan_iter(match="*")]
    assert any(name.startswith(b"oc:staff:ip:") for name in names)  # the per-address hourly count
    assert [name for name in names if address.encode() in name] == []


async def test_wrong_passwords_lock_the_username_briefly(client: AsyncTestClient, officer: Member) -> None:
    for _ in range(10):
        response = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": "x"})
        assert response.status_code == 401
    locked = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 900


async def test_wrong_codes_kill_the_ticket(client: AsyncTestClient, sms: SmsGateway, officer: Member) -> None:
    step1 = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": PASSWORD})
    ticket = step1.json()["ticket"]
    code = await latest_otp(sms, officer.phone)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = await client.post("/v1/staff/login/otp", json={"ticket": ticket, "otp": wrong})
        assert response.status_code == 401
    late = await client.post("/v1/staff/login/otp", json={"ticket": ticket, "otp": code})
    assert late.status_code == 401  # the ticket died after five wrong codes


async def test_a_ticket_and_code_work_once(client: AsyncTestClient, sms: SmsGateway, officer: Member) -> None:
    step1 = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": PASSWORD})
    body = {"ticket": step1.json()["ticket"], "otp": await latest_otp(sms, officer.phone)}
    assert (await client.post("/v1/staff/login/otp", json=body)).status_code == 200
    assert (await client.post("/v1/staff/login/otp", json=body)).status_code == 401


async def test_staff_and_citizen_tokens_do_not_mix(client: AsyncTestClient, sms: SmsGateway, officer: Member) -> None:
    staff_token = await sign_in(client, sms, officer)
    citizen_token = (await login(client, sms, "13900000031"))["access_token"]
    assert (await client.get("/v1/me", headers=bearer(staff_token))).status_code == 401
    assert (await client.get("/v1/staff/me", headers=bearer(citizen_token))).status_code == 401
    assert (await client.get("/oauth/userinfo", headers=bearer(staff_token))).status_code == 401


async def test_disabling_staff_ends_their_tokens(
    client: AsyncTestClient, sms: SmsGateway, officer: Member, pool: Pool, redis: Redis, vault: Vault
) -> None:
    token = await sign_in(client, sms, officer)
    assert (await client.get("/v1/staff/me", headers=bearer(token))).status_code == 200
    # As ``onecity staff disable`` does it, from another process.
    await StaffAdmin(pool, vault, revocations=RevocationSet.for_administration(redis, pool)).disable(officer.username)
    assert (await client.get("/v1/staff/me", headers=bearer(token))).status_code == 401
    again = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": PASSWORD})
    assert again.status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "X"}, "username"),
        ({"phone": "12345"}, "phone"),
        ({"password": "short"}, "password"),
        ({"roles": ["superuser"]}, "roles"),
        ({"roles": []}, "roles"),
        ({"region": "43010"}, "region"),
        ({"region": "4301020010011"}, "region"),
    ],
)
async def test_invalid_staff_are_refused(
    clean: None, staff_admin: StaffAdmin, kwargs: dict[str, object], message: str
) -> None:
    params: dict[str, object] = {
        "username": "valid.name",
        "name": "N",
        "phone": "13700000009",
        "password": PASSWORD,
        "roles": ["auditor"],
        "region": "4301",
    }
    params.update(kwargs)
    username = str(params.pop("username"))
    with pytest.raises(StaffAdminError, match=message):
        await staff_admin.add(username, **params)  # type: ignore[arg-type]


async def test_cli_add_list_disable(
    client: AsyncTestClient,
    sms: SmsGateway,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(onecity, ["staff", *argv], settings=settings)

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code = await cli(
        "add",
        "auditor.city",
        "--name",
        "Auditor Li",
        "--phone",
        "13700000002",
        "--role",
        "auditor",
        "--region",
        "4301",
        "--password-stdin",
    )
    assert code == 0
    assert "auditor.city (auditor; city 4301)" in capsys.readouterr().out
    token = await sign_in(client, sms, Member("auditor.city", "13700000002", "4301"))
    assert await cli("list") == 0
    assert "auditor.city\tenabled\tAuditor Li\tauditor\t4301" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert (
        await cli(
            "add",
            "auditor.city",
            "--name",
            "Again",
            "--phone",
            "13700000002",
            "--role",
            "auditor",
            "--region",
            "4301",
            "--password-stdin",
        )
        == 2
    )
    assert "taken" in capsys.readouterr().err
    assert await cli("disable", "auditor.city") == 0
    assert (await client.get("/v1/staff/me", headers=bearer(token))).status_code == 401
    assert await cli("disable", "auditor.city") == 2


async def test_disabled_staff_tokens_fail_everywhere_through_the_revocation_set(
    client: AsyncTestClient,
    sms: SmsGateway,
    officer: Member,
    pool: Pool,
    redis: Redis,
    key_store: KeyStore,
    settings: Settings,
    vault: Vault,
) -> None:
    """What every staff endpoint relies on (``provide_staff_principal``), Redis flushed or not."""
    token = await sign_in(client, sms, officer)
    tokens = AccessTokens(KeyManager(key_store, await key_store.load()), settings.identity)
    revocations = RevocationSet(redis, pool, window_s=960)
    assert (await authenticate_staff(tokens, token, revocations)).region == "110101"
    await StaffAdmin(pool, vault, revocations=revocations).disable(officer.username)
    with pytest.raises(Unauthorized):
        await authenticate_staff(tokens, token, revocations)
    await redis.flushdb()  # Redis lost everything: the set is rebuilt from PostgreSQL
    with pytest.raises(Unauthorized):
        await authenticate_staff(tokens, token, revocations)
