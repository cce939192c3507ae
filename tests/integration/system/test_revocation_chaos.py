"""Revocations made while Redis is down hold after Redis comes back from its snapshot — for
every kind: an ended citizen session, a partner token revoked by RFC 7009, a withdrawn consent
(its grant), a disabled client and a disabled staff member (the last two as ``onecity clients
disable`` / ``onecity staff disable`` do it: from another process, with no window of its own).

The app runs in-process on the suite's PostgreSQL and a Redis this module owns
(``tests.support.owned_servers``). Redis is stopped with SIGTERM, so it writes its snapshot
with the markers of complete revocation buckets, and started again from it: the markers are
back, the keys of the revocations made meanwhile are not. A second app (a process of the
deployment started after Redis came back, which saw nothing of the outage) must refuse the
tokens too. Then Redis loses everything (FLUSHALL): the buckets are rebuilt from PostgreSQL.
Nothing changes for the tokens nobody revoked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from bff.app import create_app
from bff.settings import Settings, with_derived
from core.crypto import Vault
from core.db import Pool
from core.redis import Redis, create_redis
from identity.oidc import ClientAdmin
from identity.revocation import ACCESS_TOKENS, CLIENTS, GRANTS, SESSIONS, STAFF, RevocationSet
from identity.staff import StaffAdmin
from identity.staff.passwords import Passwords
from services.departments.sms import SmsGateway
from tests.conftest import reset_state
from tests.integration.identity.oidc.conftest import ISSUER, Partner, code_for, exchange, machine_token
from tests.support.asgi import running_app
from tests.support.chaos import claims_of
from tests.support.citizens import bearer, latest_otp, login
from tests.support.owned_servers import OwnedRedis, owned_redis

HOSPITAL_REDIRECT = "https://hospital.example/callback"
#: A venue nobody registered: a partner whose token passes gets 404, one whose token is dead 401.
NO_VENUE = "/v1/venues/AAAAAAAAAAA"
STAFF_PHONE = "13600000901"

#: (method, path, token) per probe; filled by the test.
Probes = dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[OwnedRedis]:
    async with owned_redis() as running:
        yield running


@pytest.fixture
async def control(server: OwnedRedis) -> AsyncIterator[Redis]:
    async with contextlib.aclosing(create_redis(server.url())) as client:
        yield client


@pytest.fixture
def chaos_settings(settings: Settings, server: OwnedRedis) -> Settings:
    """The suite's settings on the owned Redis (test issuer, cheap argon2, SMS second factor)."""
    redis = msgspec.structs.replace(settings.redis, url=server.url())
    staff = msgspec.structs.replace(
        settings.staff, argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1, webauthn_required=False
    )
    oidc = msgspec.structs.replace(settings.oidc, client_cache_ttl_s=0)
    return with_derived(msgspec.structs.replace(settings, redis=redis, staff=staff, oidc=oidc, public_url=ISSUER))


async def _statuses(client: httpx.AsyncClient, probes: Probes) -> dict[str, int]:
    return {name: (await client.get(path, headers=bearer(token))).status_code for name, (path, token) in probes.items()}


async def _staff_token(client: httpx.AsyncClient, sms: SmsGateway) -> str:
    step1 = await client.post(
        "/v1/staff/login/password", json={"username": "officer.dongcheng", "password": "correct horse battery staple"}
    )
    assert step1.status_code == 202, step1.text
    code = await latest_otp(sms, STAFF_PHONE)
    step2 = await client.post("/v1/staff/login/otp", json={"ticket": step1.json()["ticket"], "otp": code})
    assert step2.status_code == 200, step2.text
    token: str = step2.json()["access_token"]
    return token


async def test_every_kind_revoked_while_redis_is_down_stays_revoked_after_its_snapshot_returns(
    server: OwnedRedis, control: Redis, chaos_settings: Settings, pool: Pool, vault: Vault, sms: SmsGateway
) -> None:
    await reset_state(pool, control)
    partners = ClientAdmin(pool, vault)
    created = await partners.add(
        "hospital",
        name="City Hospital",
        redirect_uris=[HOSPITAL_REDIRECT],
        scopes=["openid", "profile", "venues:write"],
    )
    gates_created = await partners.add("metro-gates", name="Metro gates", scopes=["venues:write"])
    assert created is not None and gates_created is not None
    hospital = Partner("hospital", created.secret, HOSPITAL_REDIRECT)
    gates = Partner("metro-gates", gates_created.secret, "")
    staff = StaffAdmin(pool, vault, passwords=Passwords.from_settings(chaos_settings.staff))
    await staff.add(
        "officer.dongcheng",
        name="Officer Wang",
        phone=STAFF_PHONE,
        password="correct horse battery staple",
        roles=["health_officer"],
        region="110101",
    )

    async with running_app(create_app(chaos_settings)) as client:
        ended = (await login(client, sms, "13600000902"))["access_token"]
        kept = (await login(client, sms, "13600000903"))["access_token"]
        consenting = (await login(client, sms, "13600000904"))["access_token"]
        code, verifier = await code_for(client, consenting, hospital)
        exchanged = await exchange(client, hospital, code, verifier)
        assert exchanged.status_code == 200, exchanged.text
        granted = exchanged.json()["access_token"]
        revoked_machine = await machine_token(client, hospital, scope="venues:write")
        kept_machine = await machine_token(client, hospital, scope="venues:write")
        gate_machine = await machine_token(client, gates, scope="venues:write")
        staff_token = await _staff_token(client, sms)

        revoked: Probes = {
            "ended session": ("/v1/me", ended),
            "partner token revoked (RFC 7009)": (NO_VENUE, revoked_machine),
            "withdrawn consent (grant)": ("/oauth/userinfo", granted),
            "disabled client": (NO_VENUE, gate_machine),
            "disabled staff member": ("/v1/staff/me", staff_token),
        }
        untouched: Probes = {"session": ("/v1/me", kept), "partner token": (NO_VENUE, kept_machine)}
        working = {
            "ended session": 200,
            "partner token revoked (RFC 7009)": 404,
            "withdrawn consent (grant)": 200,
            "disabled client": 404,
            "disabled staff member": 200,
        }
        dead = dict.fromkeys(revoked, 401)
        fine = {"session": 200, "partner token": 404}
        assert await _statuses(client, revoked) == working
        # The checks above completed the buckets these revocations will land in.
        markers = [
            RevocationSet.marker_of(SESSIONS, claims_of(ended)["sid"]),
            RevocationSet.marker_of(ACCESS_TOKENS, claims_of(revoked_machine)["jti"]),
            RevocationSet.marker_of(GRANTS, claims_of(granted)["sid"]),
            RevocationSet.marker_of(CLIENTS, "metro-gates"),
            RevocationSet.marker_of(STAFF, claims_of(staff_token)["sub"]),
        ]
        assert [await control.exists(marker) for marker in markers] == [1] * len(markers)

        await server.astop()  # SIGTERM: Redis writes its snapshot, as in production
        # Everything revoked while Redis is down: PostgreSQL records it, Redis cannot.
        ended_sid = claims_of(ended)["sid"]
        assert (await client.delete(f"/v1/me/sessions/{ended_sid}", headers=bearer(ended))).status_code == 204
        assert created.secret is not None
        revoke = await client.post("/oauth/revoke", data={"token": revoked_machine}, auth=("hospital", created.secret))
        assert revoke.status_code == 200, revoke.text
        assert (await client.delete("/v1/me/consents/hospital", headers=bearer(consenting))).status_code == 204
        async with contextlib.aclosing(create_redis(server.url())) as command_redis:  # the CLI's own client
            command = RevocationSet.for_administration(command_redis, pool)
            assert await ClientAdmin(pool, vault, command).disable("metro-gates") == 0
            await StaffAdmin(pool, vault, revocations=command).disable("officer.dongcheng")
        # Meanwhile PostgreSQL answers the checks.
        assert await _statuses(client, revoked) == dead
        assert await _statuses(client, untouched) == fine

        await server.astart()  # from its snapshot: the markers are back, those keys are not
        assert await _statuses(client, revoked) == dead
        assert await _statuses(client, untouched) == fine
        # A process that saw nothing of the outage: the buckets were rebuilt for it too.
        async with running_app(create_app(chaos_settings)) as bystander:
            assert await _statuses(bystander, revoked) == dead
            assert await _statuses(bystander, untouched) == fine

            # Redis loses everything: rebuilt from PostgreSQL (a new connection: the restart
            # closed the old ones).
            async with contextlib.aclosing(create_redis(server.url())) as after_restart:
                await after_restart.flushall()
            assert await _statuses(bystander, revoked) == dead
            assert await _statuses(client, revoked) == dead
            assert await _statuses(client, untouched) == fine
