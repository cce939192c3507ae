"""The SWR cache's ages and its fail-open behaviour, against a scripted Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis.exceptions

from services.resilience import CacheEntry, CacheTtl, Freshness, SwrCache


class ScriptedRedis:
    """Just ``get``/``set``, that can be told to fail or to be slow."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.error: Exception | None = None
        self.delay = 0.0
        self.calls = 0

    async def _behave(self) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def get(self, key: str) -> bytes | None:
        await self._behave()
        return self.data.get(key)

    async def set(self, key: str, value: bytes, ex: int) -> None:
        await self._behave()
        self.data[key] = value

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        await self._behave()
        return [self.data.get(key) for key in keys]


def cache_over(fake: ScriptedRedis, **kwargs: Any) -> SwrCache:
    return SwrCache(fake, **kwargs)  # type: ignore[arg-type]


def test_ages() -> None:
    ttl = CacheTtl(fresh_s=10, revalidate_s=50, stale_if_error_s=3600)
    assert ttl.classify(0) is Freshness.FRESH
    assert ttl.classify(10) is Freshness.REVALIDATE
    assert ttl.classify(59.9) is Freshness.REVALIDATE
    assert ttl.classify(60) is Freshness.STALE
    assert ttl.classify(3600) is Freshness.EXPIRED
    assert ttl.keep_s == 3601
    assert CacheTtl(fresh_s=10, revalidate_s=100, stale_if_error_s=0).keep_s == 111


async def test_round_trip_and_damaged_entries() -> None:
    fake = ScriptedRedis()
    cache = cache_over(fake)
    entry = CacheEntry(as_of=123.5, data=msgspec.Raw(b'{"a":1}'))
    await cache.put("k", entry, keep_s=10)
    got = await cache.get("k")
    assert got is not None
    assert got.as_of == 123.5
    assert bytes(got.data) == b'{"a":1}'
    fake.data["k"] = b"not json"
    assert await cache.get("k") is None, "a damaged entry is a miss"
    assert await cache.get("missing") is None


@pytest.mark.parametrize(
    "error", [redis.exceptions.ConnectionError("down"), redis.exceptions.ResponseError("OOM"), OSError("reset")]
)
async def test_redis_errors_are_misses_and_then_redis_is_skipped(error: Exception) -> None:
    fake = ScriptedRedis()
    fake.error = error
    cache = cache_over(fake)
    for _ in range(3):
        assert await cache.get("k") is None
        await cache.put("k", CacheEntry(as_of=1.0, data=msgspec.Raw(b"1")), keep_s=1)
    calls = fake.calls
    assert await cache.get("k") is None
    assert fake.calls == calls, "after repeated failures the cache stops asking Redis for a while"


async def test_slow_redis_is_a_miss_within_the_timeout() -> None:
    fake = ScriptedRedis()
    fake.delay = 1.0
    cache = cache_over(fake, op_timeout_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await cache.get("k") is None
    assert loop.time() - started < 0.5
    started = loop.time()
    assert await cache.get("k", timeout_s=0.01) is None, "the caller's deadline can shorten it"
    assert loop.time() - started < 0.5


async def test_no_redis_means_no_cache() -> None:
    cache = SwrCache(None)
    assert not cache.enabled
    assert await cache.get("k") is None
    await cache.put("k", CacheEntry(as_of=1.0, data=msgspec.Raw(b"1")), keep_s=1)


async def test_a_short_caller_deadline_is_not_held_against_redis() -> None:
    fake = ScriptedRedis()
    fake.delay = 0.05
    cache = cache_over(fake, op_timeout_s=1.0)
    for _ in range(5):
        assert await cache.get("k", timeout_s=0.001) is None
    assert await cache.get("k", timeout_s=0) is None
    calls = fake.calls
    fake.delay = 0
    await cache.get("k")
    assert fake.calls == calls + 1, "Redis was not skipped: the timeouts were the caller's"


async def test_get_many_is_one_round_trip_and_fails_open() -> None:
    fake = ScriptedRedis()
    cache = cache_over(fake)
    first, second = (CacheEntry(as_of=n, data=msgspec.Raw(b"{}")) for n in (1.0, 2.0))
    await cache.put("a", first, keep_s=10)
    await cache.put("b", second, keep_s=10)
    fake.data["broken"] = b"not json"
    fake.calls = 0
    assert await cache.get_many(["a", "missing", "b", "broken"]) == [first, None, second, None]
    assert fake.calls == 1
    assert await cache.get_many([]) == []
    fake.error = redis.exceptions.ConnectionError("down")
    assert await cache.get_many(["a", "b"]) == [None, None], "Redis trouble reads as misses"
