"""Ended sessions: their access tokens stop working within seconds, not at expiry.

PostgreSQL is the record (``sessions.ended_at``); Redis holds a key per ended session for
as long as an access token of it could still be unexpired, so the check on every request is
one Redis round trip. A marker key says the set is complete: when Redis was flushed or
restarted the marker is gone and the set is rebuilt from PostgreSQL before anyone is
believed. Failure policy: if Redis is unreachable, the check falls back to PostgreSQL
(fail closed only when both are down). A process that could not reach Redis (a revocation it
could not write, a check that fell back) also distrusts the set once Redis answers again, and
has it rebuilt: a Redis restarted from its snapshot still has the marker, but not the sessions
ended while it was away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import redis.exceptions

from core.db import Pool
from core.redis import Redis

__all__ = ["SessionRevocations"]

log = logging.getLogger("onecity.identity.revocation")

_READY = b"oc:rev:ready"


def _key(session_id: str) -> str:
    return f"oc:rev:{session_id}"


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
        self._rebuild_lock = asyncio.Lock()
        # Set when Redis was unreachable from this process: sessions may have ended meanwhile
        # (in PostgreSQL) without their key, so the set is rebuilt before it is trusted again.
        self._incomplete = False

    async def revoke(self, session_ids: Iterable[str]) -> None:
        """Mark sessions ended in Redis (call after PostgreSQL recorded it)."""
        ids = list(session_ids)
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.set(_key(sid), b"1", ex=self._window)
                await pipe.execute()
        except redis.exceptions.RedisError:
            # PostgreSQL has it; the fallback path and the next rebuild will see it.
            self._incomplete = True
            log.warning("revocation not written to Redis; PostgreSQL remains authoritative")

    async def is_revoked(self, session_id: str) -> bool:
        """Whether the session has ended (or never existed as far as the record knows)."""
        try:
            if self._incomplete:
                await self._redis.delete(_READY)  # everyone rebuilds (the rebuild is idempotent)
                self._incomplete = False
            # One round trip: the completeness marker and this session's key together.
            ready, revoked = await self._redis.mget(_READY, _key(session_id))
            if ready is None:
                await self.rebuild()
                revoked = await self._redis.get(_key(session_id))
            return revoked is not None
        except redis.exceptions.RedisError:
            self._incomplete = True
            return await self._is_ended_in_database(session_id)

    async def _is_ended_in_database(self, session_id: str) -> bool:
        ended = await self._pool.fetchval(
            "SELECT ended_at IS NOT NULL OR expires_at <= now() FROM sessions WHERE id = $1::uuid", session_id
        )
        return ended is None or bool(ended)

    async def rebuild(self) -> int:
        """Reload every session ended within the window from PostgreSQL; return how many."""
        async with self._rebuild_lock:
            if await self._redis.exists(_READY):
                return 0
            rows = await self._pool.fetch(
                """SELECT id::text AS id,
                          GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - ended_at))::int AS ttl
                   FROM sessions WHERE ended_at > now() - make_interval(secs => $1)""",
                self._window,
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.set(_key(row["id"]), b"1", ex=row["ttl"])
                pipe.set(_READY, b"1")
                await pipe.execute()
            log.info("revocation set rebuilt", extra={"sessions": len(rows)})
            return len(rows)
