"""Ended sessions in Redis, PostgreSQL behind them: revoke, check, rebuild, and Redis outages."""

from __future__ import annotations

import time
import uuid

import pytest

from core.crypto import Vault
from core.db import Pool
from core.redis import BUCKETS, Redis, bucket_of, create_redis
from identity.repository import IdentityRepository
from identity.revocation import SessionRevocations
from tests.support.owned_servers import owned_redis

WINDOW_S = 630  # the access token lifetime plus the clock skew


async def _session(pool: Pool, vault: Vault, phone: str, *, ended: bool = False) -> str:
    """A session in PostgreSQL, live or ended (as logout records it)."""
    async with pool.acquire() as conn, conn.transaction():
        account = await IdentityRepository.upsert_account(
            conn,
            phone_enc=vault.encrypt_text(phone, context="phone"),
            phone_index=vault.blind_index(phone, domain="phone"),
        )
        sid = await IdentityRepository.create_session(
            conn,
            account_id=account["id"],
            device_id="d1",
            device_name="phone",
            platform="ios",
            auth_method="otp",
            absolute_ttl_s=86400,
        )
        if ended:
            assert await IdentityRepository.end_session(conn, session_id=sid, account_id=account["id"], reason="logout")
    return sid


@pytest.fixture
def revocations(redis: Redis, pool: Pool, clean: None) -> SessionRevocations:
    return SessionRevocations(redis, pool, window_s=WINDOW_S)


async def test_a_revoked_session_is_revoked_and_a_live_one_is_not(
    revocations: SessionRevocations, redis: Redis, pool: Pool, vault: Vault
) -> None:
    live = await _session(pool, vault, "13800000001")
    ended = await _session(pool, vault, "13800000002", ended=True)
    before = int(time.time() * 1000)  # Redis reports expiry times in ms exactly
    await revocations.revoke([ended])
    after = int(time.time() * 1000) + 1
    # One key per ended session, in its bucket's hash tag, for exactly the window.
    key = f"oc:rev:{{rev:{bucket_of(ended)}}}:{ended}"
    assert await redis.get(key) == b"1"
    assert before + WINDOW_S * 1000 <= await redis.pexpiretime(key) <= after + WINDOW_S * 1000
    assert await revocations.is_revoked(ended) is True
    assert await revocations.is_revoked(live) is False


async def test_revoking_nothing_writes_nothing(revocations: SessionRevocations, redis: Redis) -> None:
    await revocations.revoke([])
    assert await redis.dbsize() == 0


async def test_a_lost_redis_is_rebuilt_from_postgresql_before_it_is_believed(
    revocations: SessionRevocations, redis: Redis, pool: Pool, vault: Vault
) -> None:
    ended = await _session(pool, vault, "13800000001", ended=True)
    live = await _session(pool, vault, "13800000002")
    # Ended in PostgreSQL, but its key never reached Redis (or Redis lost it): the bucket has
    # no completeness marker, so it is rebuilt on first use.
    assert await revocations.is_revoked(ended) is True
    assert await revocations.is_revoked(live) is False
    assert await redis.get(f"oc:rev:{{rev:{bucket_of(ended)}}}:ready") == b"1"


async def test_rebuild_loads_every_bucket_once(
    revocations: SessionRevocations, redis: Redis, pool: Pool, vault: Vault
) -> None:
    ended = [await _session(pool, vault, f"1380000000{i}", ended=True) for i in range(1, 5)]
    await _session(pool, vault, "13800000009")
    assert await revocations.rebuild() == 4
    assert [await redis.exists(f"oc:rev:{{rev:{b}}}:ready") for b in range(BUCKETS)] == [1] * BUCKETS
    assert await revocations.rebuild() == 0  # every marker is there: nothing to reload
    assert [await revocations.is_revoked(sid) for sid in ended] == [True] * 4


async def test_sessions_ended_before_the_window_are_not_reloaded(
    revocations: SessionRevocations, pool: Pool, vault: Vault
) -> None:
    old = await _session(pool, vault, "13800000001", ended=True)
    await pool.execute(
        "UPDATE sessions SET ended_at = now() - make_interval(secs => $2) WHERE id = $1::uuid", old, WINDOW_S + 60
    )
    assert await revocations.rebuild(bucket_of(old)) == 0
    # Its tokens have all expired by now; the set need not remember it.
    assert await revocations.is_revoked(old) is False


async def test_without_redis_postgresql_answers(pool: Pool, vault: Vault, clean: None) -> None:
    live = await _session(pool, vault, "13800000001")
    ended = await _session(pool, vault, "13800000002", ended=True)
    nowhere = create_redis("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        revocations = SessionRevocations(nowhere, pool, window_s=WINDOW_S)
        await revocations.revoke([ended])  # PostgreSQL has it; no error for the caller
        assert await revocations.is_revoked(ended) is True
        assert await revocations.is_revoked(live) is False
        # A session the record does not know is refused, never assumed live.
        assert await revocations.is_revoked(str(uuid.uuid4())) is True
    finally:
        await nowhere.aclose()


async def test_a_session_ended_while_redis_was_down_stays_revoked_after_it_returns(
    pool: Pool, vault: Vault, clean: None
) -> None:
    before = await _session(pool, vault, "13800000001", ended=True)
    during = await _session(pool, vault, "13800000002")
    async with owned_redis() as server:
        client = create_redis(server.url())
        try:
            revocations = SessionRevocations(client, pool, window_s=WINDOW_S)
            await revocations.revoke([before])
            assert await revocations.is_revoked(during) is False  # its bucket now has its marker
            await server.astop()  # SIGTERM: Redis writes its snapshot, markers included

            async with pool.acquire() as conn:
                account = await conn.fetchval("SELECT account_id::text FROM sessions WHERE id = $1::uuid", during)
                await IdentityRepository.end_session(conn, session_id=during, account_id=account, reason="logout")
            await revocations.revoke([during])  # not written: Redis is down
            assert await revocations.is_revoked(during) is True  # PostgreSQL answers meanwhile

            await server.astart()  # back from its snapshot: markers, but no key for ``during``
            assert await client.get(f"oc:rev:{{rev:{bucket_of(during)}}}:ready") == b"1"
            assert await revocations.is_revoked(during) is True
            assert await revocations.is_revoked(before) is True
            assert await client.get(f"oc:rev:{{rev:{bucket_of(during)}}}:{during}") == b"1"
        finally:
            await client.aclose()
