"""OneCity on a real Redis Cluster (3 masters + 3 replicas): the city-scale topology.

The cluster comes from :mod:`tests.support.redis_cluster` (``redis-server`` on the PATH); the
app runs in-process with ``ONECITY_REDIS_CLUSTER=true`` and ``ONECITY_REDIS_URL`` naming one
seed node, on the suite's PostgreSQL and department simulators. One cluster serves the whole
module (starting one takes ~3 s); the drills that break it come last and leave it usable or
replace it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from httpx import AsyncClient

from bff.app import create_app
from bff.settings import Settings, with_derived
from codes import render
from core.crypto import Vault
from core.db import Pool
from core.redis import Redis, create_redis
from identity.oidc import ClientAdmin
from identity.revocation import ACCESS_TOKENS, SESSIONS, RevocationSet
from identity.seed import seed_demo_citizens
from identity.staff import StaffAdmin
from identity.staff.passwords import Passwords
from messages import MessageCentre, MessagesRepository
from services.departments.sms import SmsGateway
from services.simulators import start_in_process
from tests.conftest import reset_state
from tests.integration.bff.test_rate_limit import assert_exactly_five_pass, burst
from tests.integration.messages.conftest import open_events
from tests.support.asgi import running_app
from tests.support.citizens import bearer, latest_otp, login
from tests.support.redis_cluster import RedisClusterUnderTest, redis_cluster

ISSUER = "http://testserver.local"
ZHANG_SAN = "13800000001"
LI_SI = "13800000002"


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[RedisClusterUnderTest]:
    async with redis_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def cluster_settings(settings: Settings, cluster: RedisClusterUnderTest) -> Settings:
    """The suite's settings on the cluster (cheap argon2, no client cache, test issuer)."""
    redis = msgspec.structs.replace(settings.redis, url=cluster.seed_url, cluster=True, max_connections=16)
    # Password + SMS step across the cluster; the security-key step has its own tests.
    staff = msgspec.structs.replace(
        settings.staff, argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1, webauthn_required=False
    )
    oidc = msgspec.structs.replace(settings.oidc, client_cache_ttl_s=0)
    return with_derived(msgspec.structs.replace(settings, redis=redis, staff=staff, oidc=oidc, public_url=ISSUER))


@pytest.fixture
async def cluster_redis(cluster_settings: Settings) -> AsyncIterator[Redis]:
    assert cluster_settings.redis.url
    client = create_redis(cluster_settings.redis.url, cluster=True)
    yield client
    await client.aclose()


@pytest.fixture
async def client(cluster_settings: Settings, pool: Pool, cluster_redis: Redis) -> AsyncIterator[AsyncClient]:
    await reset_state(pool, cluster_redis)  # FLUSHDB goes to every master
    render.clear_cache()
    async with running_app(create_app(cluster_settings)) as test_client:
        yield test_client


def _claims(token: str) -> dict[str, Any]:
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_citizen_flows_work_on_the_cluster(
    client: AsyncClient, sms: SmsGateway, pool: Pool, vault: Vault
) -> None:
    await seed_demo_citizens(pool, vault)
    tokens = await login(client, sms, ZHANG_SAN)
    headers = bearer(tokens["access_token"])
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    assert (await client.get("/v1/me/home", headers=headers)).status_code == 200

    # Refresh rotates; replaying the old refresh token kills the login.
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    assert (await client.get("/v1/me", headers=bearer(rotated.json()["access_token"]))).status_code == 401

    # A new login: a code issued, verified once by a partner, refused the second time.
    tokens = await login(client, sms, LI_SI)
    headers = bearer(tokens["access_token"])
    issued = await client.post("/v1/me/codes/health", headers=headers)
    assert issued.status_code in (200, 201), issued.text
    created = await ClientAdmin(pool, vault).add(
        "hospital",
        name="City Hospital",
        redirect_uris=["https://hospital.example/callback"],
        scopes=["openid", "profile", "codes:verify"],
    )
    assert created is not None and created.secret is not None
    machine = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=("hospital", created.secret),
    )
    assert machine.status_code == 200, machine.text
    partner = bearer(machine.json()["access_token"])
    body = {"payload": issued.json()["payload"], "consume": True}
    first = await client.post("/v1/codes/verify", json=body, headers=partner)
    assert first.status_code == 200 and first.json()["valid"] is True, first.text
    second = await client.post("/v1/codes/verify", json=body, headers=partner)
    assert second.status_code == 200 and second.json()["reason"] == "replayed"

    # PAR: a pushed request is stored (hash-tagged key) and answers 201.
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pushed = await client.post(
        "/oauth/par",
        data={
            "response_type": "code",
            "client_id": "hospital",
            "redirect_uri": "https://hospital.example/callback",
            "scope": "openid profile",
            "state": "st",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        auth=("hospital", created.secret),
    )
    assert pushed.status_code == 201, pushed.text

    # Logout: the access token dies at once (revocation set on the cluster).
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/v1/me", headers=headers)).status_code == 401


async def test_a_message_reaches_a_stream_through_the_cluster_within_a_second(
    cluster_settings: Settings, pool: Pool, cluster_redis: Redis, sms: SmsGateway, vault: Vault
) -> None:
    await reset_state(pool, cluster_redis)
    await seed_demo_citizens(pool, vault)
    server = await start_in_process(create_app(cluster_settings))
    try:
        async with AsyncClient(base_url=server.base_url, timeout=30.0) as http:
            tokens = await login(http, sms, ZHANG_SAN)
            me = bearer(tokens["access_token"])
            # The producer is another process's message centre on its own cluster client; the
            # keep-alive catch-up (15 s) is far away, so only the pub/sub wake-up can deliver.
            centre = MessageCentre(
                repository=MessagesRepository(pool),
                redis=cluster_redis,
                vault=vault,
                settings=cluster_settings.messages,
            )
            async with open_events(http, me) as stream:
                started = time.monotonic()
                await centre.post(
                    account_id=_claims(tokens["access_token"])["sub"],
                    category="notice",
                    title="cluster wake-up",
                    body="b",
                    dedupe_key="cluster:1",
                )
                got = await stream.next(timeout_s=1.0)
                assert time.monotonic() - started < 1.0
            assert got["json"]["title"] == "cluster wake-up"
    finally:
        await server.stop()


async def test_staff_sign_in_on_the_cluster(
    client: AsyncClient, sms: SmsGateway, pool: Pool, vault: Vault, cluster_settings: Settings
) -> None:
    admin = StaffAdmin(pool, vault, passwords=Passwords.from_settings(cluster_settings.staff))
    await admin.add(
        "officer.dongcheng",
        name="Officer Wang",
        phone="13700000001",
        password="correct horse battery staple",
        roles=["health_officer"],
        region="110101",
    )
    wrong = await client.post("/v1/staff/login/password", json={"username": "officer.dongcheng", "password": "nope"})
    assert wrong.status_code == 401
    step1 = await client.post(
        "/v1/staff/login/password",
        json={"username": "officer.dongcheng", "password": "correct horse battery staple"},
    )
    assert step1.status_code == 202, step1.text
    code = await latest_otp(sms, "13700000001")
    step2 = await client.post("/v1/staff/login/otp", json={"ticket": step1.json()["ticket"], "otp": code})
    assert step2.status_code == 200, step2.text
    assert _claims(step2.json()["access_token"])["roles"] == ["health_officer"]


async def test_rate_limit_is_atomic_on_the_cluster(
    cluster_settings: Settings, pool: Pool, cluster_redis: Redis
) -> None:
    await reset_state(pool, cluster_redis)
    assert_exactly_five_pass(await burst(cluster_settings))


async def test_a_shard_that_lost_its_data_does_not_bring_logged_out_tokens_back(
    client: AsyncClient, sms: SmsGateway, cluster: RedisClusterUnderTest, cluster_redis: Redis
) -> None:
    tokens = await login(client, sms, "13900000011")
    headers = bearer(tokens["access_token"])
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/v1/me", headers=headers)).status_code == 401

    # The shard holding this session's revocation bucket (its key and its marker) loses
    # everything; the other shards keep theirs.
    marker = RevocationSet.marker_of(SESSIONS, _claims(tokens["access_token"])["sid"])
    assert await cluster_redis.exists(marker)
    await cluster.flush_node(cluster.node_for_key(marker))
    assert not await cluster_redis.exists(marker)

    # The missing marker is noticed, the bucket rebuilt from PostgreSQL: still 401.
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["type"].endswith("/unauthorized")
    assert await cluster_redis.exists(marker)


async def test_a_shard_that_lost_its_data_does_not_bring_revoked_partner_tokens_back(
    client: AsyncClient, pool: Pool, vault: Vault, cluster: RedisClusterUnderTest, cluster_redis: Redis
) -> None:
    created = await ClientAdmin(pool, vault).add(
        "metro-gates", name="Metro", redirect_uris=["https://metro.example/cb"], scopes=["codes:verify"]
    )
    assert created is not None and created.secret is not None
    auth = ("metro-gates", created.secret)
    issued = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]

    async def active() -> bool:
        response = await client.post("/oauth/introspect", data={"token": token}, auth=auth)
        assert response.status_code == 200, response.text
        return bool(response.json()["active"])

    assert await active()
    assert (await client.post("/oauth/revoke", data={"token": token}, auth=auth)).status_code == 200
    assert not await active()

    marker = RevocationSet.marker_of(ACCESS_TOKENS, _claims(token)["jti"])
    assert await cluster_redis.exists(marker)
    await cluster.flush_node(cluster.node_for_key(marker))
    assert not await cluster_redis.exists(marker)

    assert not await active()  # the bucket was rebuilt from PostgreSQL
    assert await cluster_redis.exists(marker)


async def test_a_master_failover_loses_no_session_and_answers_503_meanwhile(
    client: AsyncClient, sms: SmsGateway, cluster: RedisClusterUnderTest, cluster_redis: Redis, pool: Pool
) -> None:
    alive = await login(client, sms, "13900000021")
    # The victim: a master other than the seed node (the app's settings name the seed; a
    # process restarted while its only seed is down cannot discover the cluster — see the
    # operations guide), holding the revocation bucket of a session that was logged out.
    seed = int(cluster.seed_url.rsplit(":", 1)[1].split("/")[0])
    for attempt in range(20):
        ended = await login(client, sms, f"139000003{attempt:02d}")
        assert (await client.post("/v1/auth/logout", headers=bearer(ended["access_token"]))).status_code == 204
        victim = cluster.node_for_key(RevocationSet.marker_of(SESSIONS, _claims(ended["access_token"])["sid"]))
        if victim != seed:
            break
    assert victim != seed

    await cluster.kill_node(victim)
    # Until a replica is promoted (cluster-node-timeout 1 s + election), a request whose keys
    # live on the dead shard (or any, once the cluster says CLUSTERDOWN) answers 503 problem
    # JSON with Retry-After (OTP sends fail closed), never 500.
    statuses: list[int] = []
    attempt = 0
    while not await asyncio.to_thread(cluster.healthy):
        attempt += 1
        assert attempt < 300, statuses
        response = await client.post("/v1/auth/otp", json={"phone": f"139001{attempt:05d}"})
        statuses.append(response.status_code)
        if response.status_code != 202:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] and response.json()["type"].endswith("/unavailable")
        await asyncio.sleep(0.05)
    assert victim not in cluster.masters()
    # The client follows the new topology: the dead master's slots work again.
    after = await client.post("/v1/auth/otp", json={"phone": "13900299999"})
    assert after.status_code == 202, after.text

    # Nothing that matters was lost: sessions and their ends live in PostgreSQL.
    assert (await client.get("/v1/me", headers=bearer(alive["access_token"]))).status_code == 200
    assert (await client.get("/v1/me", headers=bearer(ended["access_token"]))).status_code == 401
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": alive["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": ended["refresh_token"]})).status_code == 401
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL") >= 1


async def test_readiness_is_red_when_the_cluster_is_down(client: AsyncClient, cluster: RedisClusterUnderTest) -> None:
    assert (await client.get("/health/ready")).status_code == 200
    await asyncio.to_thread(cluster.stop_all)
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["checks"] == {"postgres": "ok", "redis": "down"}
    # A request that needs Redis answers 503 problem JSON, not 500.
    otp = await client.post("/v1/auth/otp", json={"phone": "13900000031"})
    assert otp.status_code == 503 and otp.json()["type"].endswith("/unavailable")
