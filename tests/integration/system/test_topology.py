"""The city topology on real processes: HAProxy → two ``onecity serve`` → PgBouncer → PostgreSQL.

Two servers (one worker each) reach the test database only through a transaction-mode
PgBouncer (``ONECITY_DB_STATEMENT_CACHE_SIZE=0``) and are reached only through HAProxy
(round-robin, ``option forwardfor``), which they trust (``ONECITY_TRUSTED_PROXIES``), and share
a real 3-master Redis Cluster (``ONECITY_REDIS_CLUSTER=true``, tests/support/redis_cluster.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from bff.seed import seed_demo
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager, KeyStore
from core.redis import Redis
from identity.oidc.seed import DEMO_CLIENT_ID, DEMO_REDIRECT_URI, DEMO_SECRET
from identity.staff import StaffAdmin
from identity.staff.passwords import Passwords
from identity.tokens import API_AUDIENCE, AccessTokens
from services.departments import DepartmentEndpoints
from services.departments.sms import SmsGateway
from services.idnumber import check_digit
from services.simulators.demo import registry_name
from tests.conftest import MASTER_KEY, reset_state
from tests.support.backends import DatabaseFactory
from tests.support.citizens import bearer, latest_otp
from tests.support.haproxy import OVERLOADED_BODY, haproxy, haproxy_binary
from tests.support.pgbouncer import PgBouncer, pgbouncer, pgbouncer_binary
from tests.support.processes import server_process
from tests.support.redis_cluster import redis_cluster

pytestmark = pytest.mark.skipif(
    pgbouncer_binary() is None or haproxy_binary() is None or shutil.which("redis-server") is None,
    reason="pgbouncer, haproxy and redis-server are needed (.ci/run installs them from Debian packages)",
)

DEVICE = {"id": "d1", "name": "Phone", "platform": "android"}
ZHANG_SAN = "13800000001"  # demo citizen at L3 (codes need a real-name level)
AUTH_RATE = 6  # per address per minute on the login endpoints (Litestar's limiter, in Redis)
PASSWORD = "correct horse battery staple"


@dataclass
class City:
    """The running topology."""

    balancer: str
    servers: tuple[str, str]
    bouncer: PgBouncer
    database_url: str


def _environment(bouncer: PgBouncer, database_url: str) -> dict[str, str]:
    database = urlsplit(database_url).path.lstrip("/")
    return {
        "ONECITY_DATABASE_URL": bouncer.url(database),
        "ONECITY_MIGRATE_DATABASE_URL": database_url,
        "ONECITY_DB_STATEMENT_CACHE_SIZE": "0",
        "ONECITY_DB_COMMAND_TIMEOUT_S": "5",
        "ONECITY_TRUSTED_PROXIES": "127.0.0.1/32",
        "ONECITY_AUTH_RATE_PER_MINUTE": str(AUTH_RATE),
        # Staff sign-in here proves the two-step ticket crosses servers; the security-key step
        # has its own tests (tests/integration/identity/staff/test_webauthn.py).
        "ONECITY_STAFF_WEBAUTHN_REQUIRED": "false",
    }


@pytest.fixture(scope="module")
async def city(
    database_url: str,
    department_endpoints: DepartmentEndpoints,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    vault: Vault,
) -> AsyncIterator[City]:
    await reset_state(pool, redis)
    await seed_demo(settings)
    await StaffAdmin(pool, vault, passwords=Passwords.from_settings(settings.staff)).add(
        "officer.topology",
        name="Officer Zhao",
        phone="13700000091",
        password=PASSWORD,
        roles=["health_officer"],
        region="110101",
    )
    async with pgbouncer(database_url) as bouncer, redis_cluster() as cluster:
        env = _environment(bouncer, database_url) | {"ONECITY_REDIS_CLUSTER": "true"}
        common: dict[str, Any] = {
            "database_url": env.pop("ONECITY_DATABASE_URL"),
            "redis_url": cluster.seed_url,
            "master_key": MASTER_KEY,
            "departments": {n: getattr(department_endpoints, n) for n in department_endpoints.__struct_fields__},
            "extra_env": env,
        }
        async with server_process(**common) as first, server_process(**common) as second:  # noqa: SIM117
            async with haproxy([first, second]) as balancer:  # needs both servers' URLs
                yield City(balancer, (first, second), bouncer, database_url)


def _from(address: str, base_url: str) -> httpx.AsyncClient:
    """A client whose connections leave from ``address`` (127.0.0.x: all loopback on Linux)."""
    return httpx.AsyncClient(base_url=base_url, transport=httpx.AsyncHTTPTransport(local_address=address), timeout=15)


async def _login(client: httpx.AsyncClient, sms: SmsGateway, phone: str) -> dict[str, Any]:
    assert (await client.post("/v1/auth/otp", json={"phone": phone})).status_code == 202
    code = await latest_otp(sms, phone)
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_citizen_partner_and_staff_flows_through_the_balancer(
    city: City, sms: SmsGateway, key_store: KeyStore, settings: Settings
) -> None:
    async with _from("127.0.0.1", city.balancer) as lb:
        # OTP login, refresh and reuse (round-robin: consecutive requests alternate servers).
        tokens = await _login(lb, sms, "13600000501")
        rotated = await lb.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        reused = await lb.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert reused.status_code == 401
        # The reuse ended the whole family, on both servers.
        for _ in range(2):
            assert (await lb.get("/v1/me", headers=bearer(rotated.json()["access_token"]))).status_code == 401

        citizen = bearer((await _login(lb, sms, ZHANG_SAN))["access_token"])
        for _ in range(2):
            home = await lb.get("/v1/me/home", headers=citizen)
            assert home.status_code == 200, home.text

        # Codes: issued through the balancer, consumed once; the replay on the other server fails.
        issued = await lb.post("/v1/me/codes/transit", headers=citizen)
        assert issued.status_code == 200, issued.text
        minted = AccessTokens(await KeyManager.open(key_store), settings.identity)
        gate, _ = minted.issue(
            subject="metro-gates", client_id="metro-gates", audience=API_AUDIENCE, scope="codes:verify"
        )
        scan = {"payload": issued.json()["payload"], "consume": True}
        async with _from("127.0.0.1", city.servers[0]) as a, _from("127.0.0.1", city.servers[1]) as b:
            first = await a.post("/v1/codes/verify", json=scan, headers=bearer(gate))
            second = await b.post("/v1/codes/verify", json=scan, headers=bearer(gate))
        assert first.status_code == 200 and first.json()["valid"] is True, first.text
        assert second.status_code == 200 and second.json()["reason"] == "replayed", second.text

        # OIDC code flow: authorize on one server, exchange on the other.
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        authorized = await lb.post(
            "/oauth/authorize",
            json={
                "client_id": DEMO_CLIENT_ID,
                "redirect_uri": DEMO_REDIRECT_URI,
                "scope": "openid profile",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "nonce": "n",
            },
            headers=citizen,
        )
        assert authorized.status_code == 200, authorized.text
        code = parse_qs(urlsplit(authorized.json()["redirect_to"]).query)["code"][0]
        exchanged = await lb.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": DEMO_REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_SECRET,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        assert (await lb.get("/oauth/userinfo", headers=bearer(exchanged.json()["access_token"]))).status_code == 200

        # Staff sign-in: password on one server, SMS code on the other.
        step1 = await lb.post("/v1/staff/login/password", json={"username": "officer.topology", "password": PASSWORD})
        assert step1.status_code == 202, step1.text
        step2 = await lb.post(
            "/v1/staff/login/otp",
            json={"ticket": step1.json()["ticket"], "otp": await latest_otp(sms, "13700000091")},
        )
        assert step2.status_code == 200, step2.text
        assert (await lb.get("/v1/staff/me", headers=bearer(step2.json()["access_token"]))).status_code == 200

        # Logout on one server is logout on every server.
        assert (await lb.post("/v1/auth/logout", headers=citizen)).status_code == 204
        for _ in range(2):
            assert (await lb.get("/v1/me", headers=citizen)).status_code == 401


async def test_clients_behind_the_balancer_have_separate_limits(city: City, pool: Pool) -> None:
    async def burst(client: httpx.AsyncClient, prefix: str, count: int) -> list[int]:
        statuses = []
        for i in range(count):
            response = await client.post("/v1/auth/otp", json={"phone": f"{prefix}{i:02d}"})
            statuses.append(response.status_code)
        return statuses

    async with _from("127.0.0.2", city.balancer) as one, _from("127.0.0.3", city.balancer) as two:
        first = await burst(one, "135000002", AUTH_RATE + 1)
        assert first[:AUTH_RATE] == [202] * AUTH_RATE and first[AUTH_RATE] == 429, first
        # Another address behind the same balancer has its own allowance (the balancer's own
        # address is the peer of every request: without trusted proxies this would be 429).
        assert await burst(two, "135000003", 2) == [202, 202]
    # The audit trail names the same client addresses as the limits did (one function).
    rows = await pool.fetch(
        "SELECT DISTINCT client_ip FROM audit_log WHERE action = 'auth.otp.send' AND client_ip LIKE '127.0.0.%'"
    )
    assert {"127.0.0.2", "127.0.0.3"} <= {r["client_ip"] for r in rows}


async def test_a_clients_own_forwarded_header_sent_straight_to_a_server_is_ignored(city: City) -> None:
    # 127.0.0.4 is not a trusted proxy: whatever it claims, it is 127.0.0.4.
    statuses = []
    async with _from("127.0.0.4", city.servers[0]) as direct:
        for i in range(AUTH_RATE + 1):
            response = await direct.post(
                "/v1/auth/otp",
                json={"phone": f"135000004{i:02d}"},
                headers={"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"},
            )
            statuses.append(response.status_code)
    assert statuses[:AUTH_RATE] == [202] * AUTH_RATE and statuses[AUTH_RATE] == 429, statuses


async def _open_streams(
    stack: contextlib.AsyncExitStack, client: httpx.AsyncClient, citizen: dict[str, str], n: int
) -> None:
    for _ in range(n):
        stream = await stack.enter_async_context(client.stream("GET", "/v1/me/events", headers=citizen))
        assert stream.status_code == 200


async def test_a_full_server_is_refused_by_the_balancer_with_the_apps_overloaded_answer(
    city: City, sms: SmsGateway
) -> None:
    # docs/operations.md "Load balancer": a per-server cap with a short queue, so a request that
    # cannot be served soon is refused at once, in the shape the app already handles; the
    # event streams must not count against that cap, or a few idle streams fill the server.
    async with _from("127.0.0.1", city.balancer) as lb:
        citizen = bearer((await _login(lb, sms, "13600000601"))["access_token"])
    server = [city.servers[0]]
    # The cap alone: two idle event streams take both places, the next request waits the
    # queue timeout and gets the balancer's 503 in OneCity's problem shape.
    async with (
        haproxy(server, server_maxconn=2, queue_timeout_s=1) as capped,
        _from("127.0.0.1", capped) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        await _open_streams(stack, client, citizen, 2)
        refused = await client.get("/v1/codes/keys")
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "2" and refused.headers["cache-control"] == "no-store"
        assert refused.json()["type"] == "https://onecity.example/problems/overloaded"
        assert refused.text == OVERLOADED_BODY
    # The recommended split: streams go to their own backend, so three of them leave the
    # API's two places free.
    async with (
        haproxy(server, server_maxconn=2, queue_timeout_s=1, split_streams=True) as split,
        _from("127.0.0.1", split) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        await _open_streams(stack, client, citizen, 3)
        keys = await client.get("/v1/codes/keys")
        assert keys.status_code == 200 and keys.json()["keys"], keys.text


async def test_three_concurrent_migrate_commands_through_the_pooler(
    city: City, database_factory: DatabaseFactory
) -> None:
    # Through PgBouncer on purpose (no direct URL): the transaction-scoped lock must hold there.
    url = await database_factory.create()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECITY_")}
    env |= {
        "ONECITY_DATABASE_URL": city.bouncer.url(urlsplit(url).path.lstrip("/")),
        "ONECITY_DB_STATEMENT_CACHE_SIZE": "0",
        "ONECITY_LOG_LEVEL": "WARNING",
    }
    runs = [
        subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [sys.executable, "-m", "bff.cli", "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [await asyncio.to_thread(run.communicate, timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err.decode()[-1000:] for _, err in outputs]
    said = sorted(out.decode().strip() for out, _ in outputs)
    assert said[:2] == ["applied 0 migration(s)", "applied 0 migration(s)"], said
    assert said[2].startswith("applied ") and not said[2].startswith("applied 0 "), said
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert held == 0
    finally:
        await conn.close()


async def test_pgbouncer_restart_under_light_load_only_503_and_no_lost_write(
    city: City, sms: SmsGateway, pool: Pool
) -> None:
    # The write under load: service-hall applications, each with its own Idempotency-Key (a
    # new row every time; check-ins would be deduplicated and rate-limited per citizen), by a
    # citizen of this test made L3 (the matter asks for a real name).
    first17 = "11010119900101" + "777"
    number = first17 + check_digit(first17)
    phone = "13600000777"
    form = {
        "parent_name": registry_name(number),
        "parent_id_number": number,
        "phone": phone,
        "child_name": "张小三",
        "child_birth_date": "2026-11-20",
        "hospital": "市妇幼保健院",
    }
    async with _from("127.0.0.5", city.balancer) as lb:
        tokens = await _login(lb, sms, phone)
        verified = await lb.post(
            "/v1/me/verification/real-name",
            json={"name": registry_name(number), "id_number": number},
            headers=bearer(tokens["access_token"]),
        )
        assert verified.status_code == 200, verified.text
        # The access token carries the level it was issued at (acr): refresh for an L3 one.
        refreshed = await lb.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        citizen = bearer(refreshed.json()["access_token"])
        before = await pool.fetchval("SELECT count(*) FROM hall_applications")
        acknowledged = 0
        statuses: list[int] = []
        unanswered: list[str] = []
        missing_retry_after = 0
        stop = time.monotonic() + 6.0

        async def load() -> None:
            nonlocal acknowledged, missing_retry_after
            while time.monotonic() < stop:
                key = secrets.token_hex(8)
                response = await lb.post(
                    "/v1/me/applications",
                    json={"matter": "birth-medical-certificate", "form": form},
                    headers={**citizen, "Idempotency-Key": key},
                )
                statuses.append(response.status_code)
                if response.status_code == 201:
                    acknowledged += 1
                elif response.status_code == 503:
                    unanswered.append(key)
                    if "retry-after" not in response.headers:
                        missing_retry_after += 1
                await asyncio.sleep(0.05)

        async def drill() -> None:
            await asyncio.sleep(1.5)
            await city.bouncer.restart(down_s=1.5)

        await asyncio.gather(load(), load(), drill())
        assert set(statuses) <= {201, 503}, statuses
        assert 503 in statuses and missing_retry_after == 0
        assert statuses[-1] == 201  # recovered once PgBouncer was back
        # A 503 may come after the commit (the pooler went away before the answer): the app
        # retries with the same Idempotency-Key and gets the stored application (200) or a
        # new one (201), never a second one.
        retried = [
            (
                await lb.post(
                    "/v1/me/applications",
                    json={"matter": "birth-medical-certificate", "form": form},
                    headers={**citizen, "Idempotency-Key": key},
                )
            ).status_code
            for key in unanswered
        ]
    assert set(retried) <= {200, 201}, retried
    stored = await pool.fetchval("SELECT count(*) FROM hall_applications") - before
    assert stored == acknowledged + len(unanswered)
