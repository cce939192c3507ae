"""The revocation set (``identity.revocation``) on real PostgreSQL and Redis, for every kind.

Each kind gets a record revoked in PostgreSQL and a live one. The set must find the revoked
one whatever Redis lost: an empty Redis (rebuilt from PostgreSQL), an unreachable one
(PostgreSQL answers), and one back from its snapshot after revocations were made while it was
away (its markers came back, the keys of those revocations did not).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from litestar.datastructures import State

from core.crypto import Vault
from core.db import Pool
from core.redis import Redis, create_redis
from identity.oidc import ClientAdmin
from identity.oidc.admin import ClientAdminError
from identity.revocation import (
    ACCESS_TOKENS,
    CLIENTS,
    GRANTS,
    KINDS,
    SESSIONS,
    STAFF,
    RevocationKind,
    RevocationSet,
    revocation_window_s,
    revocations_of,
)
from identity.staff import StaffAdmin
from identity.staff.admin import StaffAdminError
from tests.support.owned_servers import owned_redis

#: How each kind is revoked in PostgreSQL (what the domain records before telling Redis).
_REVOKE_IN_POSTGRES = {
    SESSIONS: "UPDATE sessions SET ended_at = now(), end_reason = 'logout' WHERE id = $1::uuid",
    ACCESS_TOKENS: "INSERT INTO oauth_revoked_tokens (jti, client_id, expires_at) "
    "VALUES ($1, 'partner', now() + interval '5 minutes')",
    GRANTS: "UPDATE oauth_grants SET revoked_at = now(), revoke_reason = 'consent_withdrawn' WHERE id = $1::uuid",
    CLIENTS: "UPDATE oauth_clients SET disabled_at = now() WHERE client_id = $1",
    STAFF: "UPDATE staff SET disabled_at = now() WHERE id = $1::uuid",
}


async def _account(pool: Pool) -> str:
    account: str = await pool.fetchval(
        "INSERT INTO accounts (phone_enc, phone_index) VALUES ('\\x00', gen_random_uuid()::text::bytea) "
        "RETURNING id::text"
    )
    return account


async def _live_record(pool: Pool, vault: Vault, kind: RevocationKind, n: int) -> str:
    """A record of ``kind`` that is not revoked; its id."""
    if kind is SESSIONS:
        session: str = await pool.fetchval(
            "INSERT INTO sessions (account_id, device_id, device_name, platform, auth_method, expires_at) "
            "VALUES ($1::uuid, 'd', 'Phone', 'android', 'otp', now() + interval '1 day') RETURNING id::text",
            await _account(pool),
        )
        return session
    if kind is ACCESS_TOKENS:
        return f"jti-{n}-{time.monotonic_ns()}"
    if kind is GRANTS:
        grant: str = await pool.fetchval(
            "INSERT INTO oauth_grants (client_id, account_id, scope, acr, amr, auth_time, expires_at) "
            "VALUES ('partner', $1::uuid, 'openid', 'L2', ARRAY['otp'], now(), now() + interval '1 day') "
            "RETURNING id::text",
            await _account(pool),
        )
        return grant
    if kind is CLIENTS:
        await ClientAdmin(pool, vault).add(f"client-{n}", name="Partner", scopes=["codes:verify"])
        return f"client-{n}"
    staff: str = await pool.fetchval(
        "INSERT INTO staff (username, display_name, phone_enc, password_hash, roles, region_code) "
        "VALUES ($1, 'Officer', '\\x00', 'unused', ARRAY['auditor'], '1101') RETURNING id::text",
        f"officer.{n}",
    )
    return staff


@pytest.fixture
async def partner(clean: None, pool: Pool, vault: Vault) -> None:
    """The client that grants and revoked tokens belong to."""
    await ClientAdmin(pool, vault).add("partner", name="Partner", scopes=["codes:verify"])


async def _records(pool: Pool, vault: Vault) -> dict[RevocationKind, tuple[str, str]]:
    """For every kind: (an id revoked in PostgreSQL, a live id)."""
    records = {}
    for n, kind in enumerate(KINDS):
        revoked = await _live_record(pool, vault, kind, 2 * n)
        await pool.execute(_REVOKE_IN_POSTGRES[kind], revoked)
        records[kind] = (revoked, await _live_record(pool, vault, kind, 2 * n + 1))
    return records


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
async def test_an_empty_redis_is_rebuilt_from_postgresql(
    kind: RevocationKind, partner: None, pool: Pool, vault: Vault, redis: Redis
) -> None:
    revoked, live = (await _records(pool, vault))[kind]
    revocations = RevocationSet(redis, pool, window_s=600)
    assert await redis.exists(RevocationSet.marker_of(kind, revoked)) == 0
    assert await revocations.is_revoked((kind, revoked)) is True
    assert await revocations.is_revoked((kind, live)) is False
    assert await redis.exists(RevocationSet.marker_of(kind, revoked)) == 1
    # A flush loses every key and marker: rebuilt again.
    await redis.flushdb()
    assert await revocations.is_revoked((kind, live), (kind, revoked)) is True


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
async def test_postgresql_answers_while_redis_is_unreachable(
    kind: RevocationKind, partner: None, pool: Pool, vault: Vault
) -> None:
    revoked, live = (await _records(pool, vault))[kind]
    async with contextlib.aclosing(create_redis("redis://127.0.0.1:1/0")) as unreachable:
        revocations = RevocationSet(unreachable, pool, window_s=600)
        assert await revocations.is_revoked((kind, revoked)) is True
        assert await revocations.is_revoked((kind, live)) is False
        assert await revocations.is_revoked((kind, live), (kind, None)) is False


async def _dropped(redis: Redis, marker: str, *, timeout_s: float = 30.0) -> bool:
    """Wait until ``marker`` is gone; whether it went within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not await redis.exists(marker):
            return True
        await asyncio.sleep(0.1)
    return False


@contextlib.asynccontextmanager
async def _repairing(revocations: RevocationSet) -> AsyncIterator[None]:
    tasks = revocations.background_tasks()
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_revocations_made_while_redis_was_away_hold_after_its_snapshot_returns(
    partner: None, pool: Pool, vault: Vault
) -> None:
    """Every kind, revoked while Redis is stopped: after Redis restarts from its snapshot (with
    the markers of complete buckets, without those keys) the revocations hold, in the process
    that saw the outage and in one started after Redis came back (it saw nothing)."""
    records = await _records(pool, vault)
    async with owned_redis() as server, contextlib.aclosing(create_redis(server.url())) as serving_client:
        serving = RevocationSet(serving_client, pool, window_s=600)
        assert await serving.rebuild() == len(KINDS)  # every bucket complete: the revoked records
        for kind, (_, live) in records.items():
            assert await serving.is_revoked((kind, live)) is False

        await server.astop()  # SIGTERM: Redis writes its snapshot, markers included
        for kind, (_, live) in records.items():
            await pool.execute(_REVOKE_IN_POSTGRES[kind], live)
            await serving.revoke(kind, [live], expires_at=time.time() + 300)  # Redis refuses
            assert await serving.is_revoked((kind, live)) is True  # PostgreSQL answers
        await server.astart()

        async with contextlib.aclosing(create_redis(server.url())) as bystander_client:
            markers = [RevocationSet.marker_of(kind, live) for kind, (_, live) in records.items()]
            assert await bystander_client.exists(*markers) == len(markers), "the snapshot has the markers"
            for kind, (revoked, live) in records.items():
                assert await serving.is_revoked((kind, live)) is True, kind.name
                assert await serving.is_revoked((kind, revoked)) is True, kind.name
            # The process that saw the outage had every bucket rebuilt: one that saw nothing
            # finds these revocations too.
            bystander = RevocationSet(bystander_client, pool, window_s=600)
            for kind, (_, live) in records.items():
                assert await bystander.is_revoked((kind, live)) is True, kind.name


async def test_the_process_that_saw_the_outage_repairs_the_set_without_a_request(
    partner: None, pool: Pool, vault: Vault
) -> None:
    """Its repair task drops the markers as soon as Redis answers, so a process that saw
    nothing is right from its first check."""
    records = await _records(pool, vault)
    async with owned_redis() as server, contextlib.aclosing(create_redis(server.url())) as serving_client:
        serving = RevocationSet(serving_client, pool, window_s=600)
        await serving.rebuild()
        async with _repairing(serving):
            await server.astop()
            revoked_grant = records[GRANTS][1]
            await pool.execute(_REVOKE_IN_POSTGRES[GRANTS], revoked_grant)
            await serving.revoke(GRANTS, [revoked_grant])
            await server.astart()
            async with contextlib.aclosing(create_redis(server.url())) as bystander_client:
                # No check by ``serving``: its repair task alone drops the markers.
                marker = RevocationSet.marker_of(GRANTS, revoked_grant)
                assert await _dropped(bystander_client, marker), "the markers were not dropped"
                bystander = RevocationSet(bystander_client, pool, window_s=600)
                assert await bystander.is_revoked((GRANTS, revoked_grant)) is True


async def test_an_administration_command_keeps_keys_for_the_serving_window(
    partner: None, pool: Pool, redis: Redis
) -> None:
    serving = RevocationSet(redis, pool, window_s=777)
    admin = RevocationSet.for_administration(redis, pool)
    # A bucket without its marker gets nothing: it is rebuilt from PostgreSQL before use.
    await admin.revoke(CLIENTS, ["ghost"])
    assert [key async for key in redis.scan_iter(match="oc:revoked:*:client:ghost")] == []
    await serving.rebuild()
    # Not recorded in PostgreSQL on purpose: only the key the command wrote can say "revoked".
    await admin.revoke(CLIENTS, ["ghost"])
    assert await serving.is_revoked((CLIENTS, "ghost")) is True
    [key] = [key async for key in redis.scan_iter(match="oc:revoked:*:client:ghost")]
    assert 700 < await redis.ttl(key) <= 777
    with pytest.raises(RuntimeError, match="does not check"):
        await admin.is_revoked((CLIENTS, "ghost"))
    with pytest.raises(ValueError, match="ONECITY_REDIS_URL"):
        RevocationSet.for_administration(None, pool)


async def test_revocation_is_required_wiring(clean: None, pool: Pool, redis: Redis, vault: Vault) -> None:
    with pytest.raises(RuntimeError, match="no revocation set"):
        revocations_of(State())
    # Disabling without a set would leave the tokens working: refused, and nothing changes.
    await ClientAdmin(pool, vault).add("partner", name="Partner", scopes=["codes:verify"])
    with pytest.raises(ClientAdminError, match="revocation set"):
        await ClientAdmin(pool, vault).disable("partner")
    assert await pool.fetchval("SELECT disabled_at FROM oauth_clients WHERE client_id = 'partner'") is None
    with pytest.raises(StaffAdminError, match="revocation set"):
        await StaffAdmin(pool, vault).disable("nobody")
    with pytest.raises(ValueError, match="window_s"):
        RevocationSet(redis, pool, window_s=0)
    only_sessions = RevocationSet(redis, pool, window_s=600, kinds=[SESSIONS])
    with pytest.raises(ValueError, match="'client'"):
        await only_sessions.is_revoked((CLIENTS, "partner"))


def test_the_window_is_the_longest_token_lifetime_plus_the_skew() -> None:
    assert revocation_window_s(600, 600, 900, clock_skew_s=30) == 930
