"""Revoked partner and staff tokens: checked in one Redis round trip on every request.

Four things can make an otherwise valid access token dead before it expires:

- the token itself was revoked (RFC 7009), by its ``jti``;
- its grant was revoked (a replayed code or refresh token, consent withdrawn), by ``sid``;
- its client was disabled (``onecity clients disable``);
- its subject was disabled (``onecity staff disable``).

PostgreSQL is the record of each (``oauth_revoked_tokens``, ``oauth_grants.revoked_at``,
``oauth_clients.disabled_at``, ``staff.disabled_at``); Redis holds one key per revocation
for as long as a token it kills could still be unexpired. The keys are spread over
:data:`~core.redis.BUCKETS` buckets by a hash of ``<kind>:<id>``; each bucket is one hash tag
(``oc:tokrev:{tokrev:<n>}:...``, one Redis Cluster slot) with its own completeness marker, and
:meth:`is_revoked` reads each bucket it needs with one ``MGET`` (marker and keys together),
the buckets concurrently. When a Redis, or one shard of a Cluster, lost its data the markers
of its buckets are gone and those buckets are rebuilt from PostgreSQL first; when Redis is
down the check asks PostgreSQL directly (fail closed only when both are down).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import redis.exceptions

from core.db import Pool
from core.redis import BUCKETS, Redis, bucket_of

# RedisClusterException ("cannot connect to the cluster") is not a RedisError.
_REDIS_DOWN = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)

__all__ = ["TokenRevocations"]

log = logging.getLogger("onecity.oidc.revocation")


def _tag(bucket: int) -> str:
    return f"oc:tokrev:{{tokrev:{bucket}}}"


def _marker(bucket: int) -> str:
    return f"{_tag(bucket)}:ready"


def _entry(kind: str, value: str) -> tuple[int, str]:
    """The bucket and key of one revocation (``kind`` is jti, grant, client or sub)."""
    bucket = bucket_of(f"{kind}:{value}")
    return bucket, f"{_tag(bucket)}:{kind}:{value}"


def _jti(jti: str) -> tuple[int, str]:
    return _entry("jti", jti)


def _grant(grant_id: str) -> tuple[int, str]:
    return _entry("grant", grant_id)


def _client(client_id: str) -> tuple[int, str]:
    return _entry("client", client_id)


def _subject(subject: str) -> tuple[int, str]:
    return _entry("sub", subject)


_DB_CHECK = """
SELECT EXISTS (SELECT 1 FROM oauth_revoked_tokens WHERE jti = $1)
    OR ($2::text IS NOT NULL AND EXISTS (
        SELECT 1 FROM oauth_grants WHERE id::text = $2 AND revoked_at IS NOT NULL))
    OR ($3::text IS NOT NULL AND EXISTS (
        SELECT 1 FROM oauth_clients WHERE client_id = $3 AND disabled_at IS NOT NULL))
    OR ($4::text IS NOT NULL AND EXISTS (
        SELECT 1 FROM staff WHERE 'staff:' || id::text = $4 AND disabled_at IS NOT NULL))
"""

# The bucket test is core.redis.bucket_of in SQL: first byte of SHA-256 modulo $4 (BUCKETS).
_REBUILD = """
SELECT kind, id, ttl FROM (
SELECT 'jti' AS kind, jti AS id, GREATEST(1, EXTRACT(EPOCH FROM expires_at - now()))::int + $2 AS ttl
  FROM oauth_revoked_tokens WHERE expires_at > now() - make_interval(secs => $2)
UNION ALL
SELECT 'grant', id::text, GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - revoked_at))::int
  FROM oauth_grants WHERE revoked_at > now() - make_interval(secs => $1)
UNION ALL
SELECT 'client', client_id, GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - disabled_at))::int
  FROM oauth_clients WHERE disabled_at > now() - make_interval(secs => $1)
UNION ALL
SELECT 'sub', 'staff:' || id::text, GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - disabled_at))::int
  FROM staff WHERE disabled_at > now() - make_interval(secs => $1)
) entries WHERE get_byte(sha256(convert_to(kind || ':' || id, 'UTF8')), 0) % $4 = $3
"""


class TokenRevocations:
    """The revocation set of partner and staff access tokens.

    Args:
        redis: The Redis client.
        pool: The PostgreSQL pool (source of truth).
        window_s: The longest an access token of a revoked grant, client or subject could
            still be presented: the longest access token lifetime plus clock skew.
        skew_s: Added to a revoked token's own expiry.
    """

    def __init__(self, redis: Redis, pool: Pool, *, window_s: int, skew_s: int = 30) -> None:
        self._redis = redis
        self._pool = pool
        self._window = window_s
        self._skew = skew_s
        self._rebuild_locks = [asyncio.Lock() for _ in range(BUCKETS)]

    @property
    def window_s(self) -> int:
        """How long a grant, client or subject revocation is kept in Redis."""
        return self._window

    async def _set(self, entries: Iterable[tuple[tuple[int, str], int]]) -> None:
        by_bucket: dict[int, list[tuple[str, int]]] = {}
        for (bucket, key), ttl in entries:
            by_bucket.setdefault(bucket, []).append((key, ttl))
        try:
            # One single-slot pipeline per bucket (a Cluster routes each to its shard).
            await asyncio.gather(*(self._write(keys) for keys in by_bucket.values()))
        except _REDIS_DOWN:
            # PostgreSQL has it; the fallback path and the next rebuild will see it.
            log.warning("revocation not written to Redis; PostgreSQL remains authoritative")

    async def _write(self, keys: list[tuple[str, int]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, ttl in keys:
                pipe.set(key, b"1", ex=max(1, ttl))
            await pipe.execute()

    async def revoke_token(self, jti: str, *, expires_at: float) -> None:
        """Mark one access token revoked (after PostgreSQL recorded it)."""
        await self._set([(_jti(jti), int(expires_at - time.time()) + self._skew)])

    async def revoke_grants(self, grant_ids: Iterable[str]) -> None:
        """Mark grants revoked: every access token with such a ``sid`` dies."""
        await self._set([(_grant(g), self._window) for g in grant_ids])

    async def revoke_client(self, client_id: str) -> None:
        """Mark a client disabled: every access token issued to it dies."""
        await self._set([(_client(client_id), self._window)])

    async def revoke_subject(self, subject: str) -> None:
        """Mark a subject (``staff:<id>``) disabled: every access token about it dies."""
        await self._set([(_subject(subject), self._window)])

    async def is_revoked(
        self,
        *,
        jti: str,
        grant_id: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
    ) -> bool:
        """Whether a token with these claims was revoked, one way or another."""
        entries = [_jti(jti)]
        entries += [_grant(grant_id)] if grant_id else []
        entries += [_client(client_id)] if client_id else []
        entries += [_subject(subject)] if subject else []
        by_bucket: dict[int, list[str]] = {}
        for bucket, key in entries:
            by_bucket.setdefault(bucket, []).append(key)
        try:
            found = await asyncio.gather(*(self._bucket_has(b, keys) for b, keys in by_bucket.items()))
            return any(found)
        except _REDIS_DOWN:
            revoked = await self._pool.fetchval(_DB_CHECK, jti, grant_id, client_id, subject)
            return bool(revoked)

    async def _bucket_has(self, bucket: int, keys: list[str]) -> bool:
        """Whether any of ``keys`` (all in ``bucket``) is set; rebuilds the bucket first when
        its marker is gone. One ``MGET``, one slot."""
        values = await self._redis.mget(_marker(bucket), *keys)
        if values[0] is None:
            await self.rebuild(bucket)
            values = [b"1", *await self._redis.mget(keys)]
        return any(v is not None for v in values[1:])

    async def rebuild(self, bucket: int | None = None) -> int:
        """Reload the revocations still relevant from PostgreSQL into one bucket whose marker
        is missing (``None``: every such bucket); return how many were written."""
        if bucket is None:
            return sum([await self.rebuild(b) for b in range(BUCKETS)])
        async with self._rebuild_locks[bucket]:
            if await self._redis.exists(_marker(bucket)):
                return 0
            rows = await self._pool.fetch(_REBUILD, self._window, self._skew, bucket, BUCKETS)
            async with self._redis.pipeline(transaction=False) as pipe:  # one slot: the bucket's
                for row in rows:
                    pipe.set(_entry(row["kind"], row["id"])[1], b"1", ex=max(1, row["ttl"]))
                pipe.set(_marker(bucket), b"1")
                await pipe.execute()
            log.info("token revocation bucket rebuilt", extra={"bucket": bucket, "entries": len(rows)})
            return len(rows)
