"""Ended sessions: their access tokens stop working within seconds, not at expiry.

PostgreSQL is the record (``sessions.ended_at``); Redis holds a key per ended session for
as long as an access token of it could still be unexpired, so the check on every request is
one Redis round trip. The set is split into :data:`~core.redis.BUCKETS` buckets by a hash of
the session id; each bucket is one hash tag (``oc:rev:{rev:<n>}:...``, one Redis Cluster slot)
with its own completeness marker, read with the session's key in one ``MGET``. When a Redis
(or one shard of a Cluster) lost its data the markers of its buckets are gone and those
buckets are rebuilt from PostgreSQL before anyone is believed. Failure policy: if Redis is
unreachable, the check falls back to PostgreSQL (fail closed only when both are down). A
process that could not reach Redis (a revocation it could not write, a check that fell back)
also distrusts every bucket once Redis answers again, and has them rebuilt: a Redis restarted
from its snapshot still has the markers, but not the sessions ended while it was away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import redis.exceptions

from core.db import Pool
from core.redis import BUCKETS, Redis, bucket_of

# RedisClusterException ("cannot connect to the cluster") is not a RedisError.
_REDIS_DOWN = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)

__all__ = ["SessionRevocations"]

log = logging.getLogger("onecity.identity.revocation")


def _tag(bucket: int) -> str:
    return f"oc:rev:{{rev:{bucket}}}"


def _marker(bucket: int) -> str:
    return f"{_tag(bucket)}:ready"


def _key(session_id: str) -> str:
    return f"{_tag(bucket_of(session_id))}:{session_id}"


# The bucket test is core.redis.bucket_of in SQL: first byte of SHA-256 modulo $3 (BUCKETS).
_REBUILD = """SELECT id::text AS id,
                      GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - ended_at))::int AS ttl
               FROM sessions
               WHERE ended_at > now() - make_interval(secs => $1)
                 AND get_byte(sha256(convert_to(id::text, 'UTF8')), 0) % $3 = $2"""


class SessionRevocations:
    """The revocation set keyed by ``sid``.

    Args:
        redis: The Redis client.
        pool: The PostgreSQL pool (source of truth).
        window_s: How long after ending a session its tokens could still be presented:
            the access token lifetime plus clock skew.
    """

    def __init__(self, redis: Redis, pool: Pool, *, window_s: int) -> None:
        self._redis = redis
        self._pool = pool
        self._window = window_s
        self._rebuild_locks = [asyncio.Lock() for _ in range(BUCKETS)]
        # Set when Redis was unreachable from this process: sessions may have ended meanwhile
        # (in PostgreSQL) without their key, so the set is rebuilt before it is trusted again.
        self._incomplete = False

    async def revoke(self, session_ids: Iterable[str]) -> None:
        """Mark sessions ended in Redis (call after PostgreSQL recorded it)."""
        ids = list(session_ids)
        if not ids:
            return
        by_bucket: dict[int, list[str]] = {}
        for sid in ids:
            by_bucket.setdefault(bucket_of(sid), []).append(sid)
        try:
            # One single-slot pipeline per bucket (a Cluster routes each to its shard).
            await asyncio.gather(*(self._write(sids) for sids in by_bucket.values()))
        except _REDIS_DOWN:
            # PostgreSQL has it; the fallback path and the next rebuild will see it.
            self._incomplete = True
            log.warning("revocation not written to Redis; PostgreSQL remains authoritative")

    async def _write(self, session_ids: list[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in session_ids:
                pipe.set(_key(sid), b"1", ex=self._window)
            await pipe.execute()

    async def is_revoked(self, session_id: str) -> bool:
        """Whether the session has ended (or never existed as far as the record knows)."""
        try:
            if self._incomplete:
                # Everyone rebuilds every bucket (the rebuild is idempotent).
                await self._redis.delete(*(_marker(b) for b in range(BUCKETS)))
                self._incomplete = False
            # One round trip: the bucket's completeness marker and this session's key (one slot).
            bucket = bucket_of(session_id)
            ready, revoked = await self._redis.mget(_marker(bucket), _key(session_id))
            if ready is None:
                await self.rebuild(bucket)
                revoked = await self._redis.get(_key(session_id))
            return revoked is not None
        except _REDIS_DOWN:
            self._incomplete = True
            return await self._is_ended_in_database(session_id)

    async def _is_ended_in_database(self, session_id: str) -> bool:
        ended = await self._pool.fetchval(
            "SELECT ended_at IS NOT NULL OR expires_at <= now() FROM sessions WHERE id = $1::uuid", session_id
        )
        return ended is None or bool(ended)

    async def rebuild(self, bucket: int | None = None) -> int:
        """Reload the sessions ended within the window from PostgreSQL into one bucket whose
        marker is missing (``None``: every such bucket); return how many were written."""
        if bucket is None:
            return sum([await self.rebuild(b) for b in range(BUCKETS)])
        async with self._rebuild_locks[bucket]:
            if await self._redis.exists(_marker(bucket)):
                return 0
            rows = await self._pool.fetch(_REBUILD, self._window, bucket, BUCKETS)
            async with self._redis.pipeline(transaction=False) as pipe:  # one slot: the bucket's
                for row in rows:
                    pipe.set(_key(row["id"]), b"1", ex=row["ttl"])
                pipe.set(_marker(bucket), b"1")
                await pipe.execute()
            log.info("revocation bucket rebuilt", extra={"bucket": bucket, "sessions": len(rows)})
            return len(rows)
