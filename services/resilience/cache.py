"""A Redis cache with stale-while-revalidate and stale-if-error, that fails open.

Entries are ``{"as_of": <unix seconds>, "data": <raw JSON>}`` under keys the caller builds
(never containing an ID number in clear: the fan-out keys them by a keyed hash). How an entry
may be used depends on its age (:class:`CacheTtl`):

- ``FRESH`` (age < ``fresh_s``): serve it, call nobody.
- ``REVALIDATE`` (< ``fresh_s + revalidate_s``): serve it at once and refresh in the background.
- ``STALE`` (< ``stale_if_error_s``): only if the upstream fails, shown as stale with its age.
- ``EXPIRED``: ignore.

The cache is only a cache. Every Redis error or slow answer (``op_timeout_s``) reads as a miss
and a skipped write, never as an error of the request. After a few failures a breaker skips
Redis entirely for a while, so a dead Redis costs the requests nothing rather than a timeout
each (the BFF's other Redis users fail on their own terms).

Why not a library: the Redis stores we have (Litestar's, cachetools) know one TTL per entry,
not the three ages above, and none of them fails open.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import msgspec
import redis.exceptions

from core.redis import Redis, is_cluster
from services.resilience.breaker import BreakerConfig, CircuitBreaker
from services.resilience.deadline import Clock

_T = TypeVar("_T")

__all__ = ["CacheEntry", "CacheTtl", "Freshness", "SwrCache"]

log = logging.getLogger("onecity.fanout.cache")

_REDIS_BREAKER = BreakerConfig(failure_threshold=3, failure_rate=0.5, min_calls=10, window_s=10.0, open_s=5.0)


class Freshness(enum.Enum):
    """How a cached entry may be used, by age."""

    FRESH = "fresh"
    REVALIDATE = "revalidate"
    STALE = "stale"
    EXPIRED = "expired"


class CacheTtl(msgspec.Struct, frozen=True, kw_only=True):
    """The three ages of a cached answer, in seconds (see the module docstring)."""

    fresh_s: Annotated[float, msgspec.Meta(ge=0.0)]
    revalidate_s: Annotated[float, msgspec.Meta(ge=0.0)]
    stale_if_error_s: Annotated[float, msgspec.Meta(ge=0.0)]

    def classify(self, age_s: float) -> Freshness:
        """How an entry of this age may be used."""
        if age_s < self.fresh_s:
            return Freshness.FRESH
        if age_s < self.fresh_s + self.revalidate_s:
            return Freshness.REVALIDATE
        if age_s < self.stale_if_error_s:
            return Freshness.STALE
        return Freshness.EXPIRED

    @property
    def keep_s(self) -> int:
        """The Redis TTL: as long as any use of the entry is possible."""
        return max(1, int(max(self.fresh_s + self.revalidate_s, self.stale_if_error_s)) + 1)


class CacheEntry(msgspec.Struct, frozen=True):
    """A cached answer: its JSON and when the upstream gave it (Unix seconds)."""

    as_of: float
    data: msgspec.Raw


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CacheEntry)


class SwrCache:
    """Fail-open get/put of :class:`CacheEntry` in Redis.

    Args:
        redis: The client; ``None`` disables the cache (every get misses).
        op_timeout_s: Longest a get or put may take before it counts as a miss / is dropped.
        clock: Monotonic clock for the Redis breaker.
    """

    def __init__(self, redis: Redis | None, *, op_timeout_s: float = 0.1, clock: Clock = time.monotonic) -> None:
        self._redis = redis
        self._timeout = op_timeout_s
        self._breaker = CircuitBreaker(_REDIS_BREAKER, clock=clock)

    @property
    def enabled(self) -> bool:
        """Whether there is a Redis to use at all."""
        return self._redis is not None

    async def get(self, key: str, *, timeout_s: float | None = None) -> CacheEntry | None:
        """The entry under ``key``, or ``None`` on a miss, a broken entry or any Redis trouble."""
        return self._decode(await self._read(lambda r: r.get(key), timeout_s))

    async def get_many(self, keys: list[str], *, timeout_s: float | None = None) -> list[CacheEntry | None]:
        """:meth:`get` of several keys in one round trip (``MGET``; one ``GET`` each, concurrently,
        on a Redis Cluster, where the keys live in different slots). Fails open the same way."""
        if not keys:
            return []
        if self._redis is None or is_cluster(self._redis):
            return list(await asyncio.gather(*(self.get(key, timeout_s=timeout_s) for key in keys)))
        raws = await self._read(lambda r: r.mget(keys), timeout_s)
        if raws is None:
            return [None] * len(keys)
        return [self._decode(raw) for raw in raws]

    async def _read(self, command: Callable[[Redis], Awaitable[_T]], timeout_s: float | None) -> _T | None:
        """``command``'s answer, or ``None`` when there is no Redis, its breaker is open, or it
        failed or took longer than the cache's timeout (or the caller's, if shorter)."""
        wait = self._timeout if timeout_s is None else min(self._timeout, timeout_s)
        if self._redis is None or wait <= 0:
            return None
        permit = self._breaker.acquire()
        if permit is None:
            return None
        try:
            async with asyncio.timeout(wait):
                answer = await command(self._redis)
        except TimeoutError:
            if wait < self._timeout:
                permit.release()  # the caller's deadline was short, not Redis slow: no verdict
            else:
                permit.failure()
                log.warning("cache read skipped", extra={"error": "TimeoutError"})
            return None
        except (OSError, redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
            permit.failure()
            log.warning("cache read skipped", extra={"error": exc.__class__.__name__})
            return None
        except BaseException:
            permit.release()
            raise
        permit.success()
        return answer

    @staticmethod
    def _decode(raw: bytes | str | None) -> CacheEntry | None:
        if raw is None:
            return None
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError:
            return None  # written by an older version, or damaged: a miss

    async def put(self, key: str, entry: CacheEntry, *, keep_s: int) -> None:
        """Store ``entry`` for ``keep_s`` seconds; failures are logged and ignored."""
        if self._redis is None:
            return
        permit = self._breaker.acquire()
        if permit is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.set(key, _encoder.encode(entry), ex=keep_s)
        except (TimeoutError, OSError, redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
            permit.failure()
            log.warning("cache write skipped", extra={"error": exc.__class__.__name__})
            return
        except BaseException:
            permit.release()
            raise
        permit.success()
