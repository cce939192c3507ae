"""The key manager reloads once for a burst of unknown key ids (single flight), and still finds a
key rotated in by another process promptly."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from core.crypto import Vault
from core.db import create_pool
from core.keys import KeyManager, KeyRing, KeyStore
from core.migrate import apply_migrations
from tests.support.backends import DatabaseFactory


class CountingStore(KeyStore):
    """The real store, counting the loads that reach PostgreSQL."""

    loads = 0

    async def load(self) -> KeyRing:
        self.loads += 1
        await asyncio.sleep(0.05)  # a slow database: the whole burst arrives during the reload
        return await super().load()


@pytest.fixture
async def store(database_factory: DatabaseFactory) -> AsyncIterator[CountingStore]:
    url = await database_factory.create()
    pool = await create_pool(url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    store = CountingStore(pool, Vault(secrets.token_bytes(32)))
    await store.ensure_active()
    yield store
    await pool.close()


async def test_a_burst_of_unknown_kids_reloads_once(store: CountingStore) -> None:
    manager = KeyManager(store, await store.load(), miss_reload_s=0.2)
    store.loads = 0
    await asyncio.sleep(0.25)  # the ring is older than the miss interval: a miss may reload
    kids = [f"token-20260101-{secrets.token_hex(4)}" for _ in range(100)]
    found = await asyncio.gather(*(manager.public_key(kid, "token") for kid in kids))
    assert found == [None] * 100
    assert store.loads == 1 and manager.reloads == 1
    # Within the interval another burst costs nothing.
    await asyncio.gather(*(manager.public_key(kid, "token") for kid in kids))
    assert store.loads == 1


async def test_a_rotated_key_is_found_promptly(store: CountingStore) -> None:
    manager = KeyManager(store, await store.load(), miss_reload_s=0.2)
    kid = await store.rotate("code")  # another process rotates
    store.loads = 0
    await asyncio.sleep(0.25)
    keys = await asyncio.gather(*(manager.public_key(kid, "code") for _ in range(20)))
    assert all(key is not None for key in keys)
    assert store.loads == 1


async def test_a_cancelled_waiter_does_not_cancel_the_shared_reload(store: CountingStore) -> None:
    manager = KeyManager(store, await store.load(), miss_reload_s=0.0)
    kid = await store.rotate("code")
    store.loads = 0
    first = asyncio.create_task(manager.public_key(kid, "code"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(manager.public_key(kid, "code"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second is not None
    assert store.loads == 1
