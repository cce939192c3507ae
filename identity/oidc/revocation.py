"""Revoked partner and staff tokens: checked in one Redis round trip on every request.

Four things can make an otherwise valid access token dead before it expires:

- the token itself was revoked (RFC 7009), by its ``jti``;
- its grant was revoked (a replayed code or refresh token, consent withdrawn), by ``sid``;
- its client was disabled (``onecity clients disable``);
- its subject was disabled (``onecity staff disable``).

PostgreSQL is the record of each (``oauth_revoked_tokens``, ``oauth_grants.revoked_at``,
``oauth_clients.disabled_at``, ``staff.disabled_at``); Redis holds one key per revocation
for as long as a token it kills could still be unexpired, and :meth:`is_revoked` asks for
all of them and the completeness marker with one ``MGET``. When Redis lost its data the
marker is gone and the keys are rebuilt from PostgreSQL first; when Redis is down the check
asks PostgreSQL directly (fail closed only when both are down).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import redis.exceptions

from core.db import Pool
from core.redis import Redis

__all__ = ["TokenRevocations"]

log = logging.getLogger("onecity.oidc.revocation")

_READY = "oc:tokrev:ready"
_PREFIX = "oc:tokrev:"


def _jti(jti: str) -> str:
    return f"{_PREFIX}jti:{jti}"


def _grant(grant_id: str) -> str:
    return f"{_PREFIX}grant:{grant_id}"


def _client(client_id: str) -> str:
    return f"{_PREFIX}client:{client_id}"


def _subject(subject: str) -> str:
    return f"{_PREFIX}sub:{subject}"


_DB_CHECK = """
SELECT EXISTS (SELECT 1 FROM oauth_revoked_tokens WHERE jti = $1)
    OR ($2::text IS NOT NULL AND EXISTS (
        SELECT 1 FROM oauth_grants WHERE id::text = $2 AND revoked_at IS NOT NULL))
    OR ($3::text IS NOT NULL AND EXISTS (
        SELECT 1 FROM oauth_clients WHERE client_id = $3 AND disabled_at IS NOT NULL))
    OR ($4::text IS NOT NULL AND EXISTS (
        SELECT 1 FROM staff WHERE 'staff:' || id::text = $4 AND disabled_at IS NOT NULL))
"""

_REBUILD = """
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
"""

_KEY_OF = {"jti": _jti, "grant": _grant, "client": _client, "sub": _subject}


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
        self._rebuild_lock = asyncio.Lock()

    @property
    def window_s(self) -> int:
        """How long a grant, client or subject revocation is kept in Redis."""
        return self._window

    async def _set(self, keys: Iterable[tuple[str, int]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, ttl in keys:
                    pipe.set(key, b"1", ex=max(1, ttl))
                await pipe.execute()
        except redis.exceptions.RedisError:
            # PostgreSQL has it; the fallback path and the next rebuild will see it.
            log.warning("revocation not written to Redis; PostgreSQL remains authoritative")

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
        keys = [_READY, _jti(jti)]
        keys += [_grant(grant_id)] if grant_id else []
        keys += [_client(client_id)] if client_id else []
        keys += [_subject(subject)] if subject else []
        try:
            values = await self._redis.mget(keys)
            if values[0] is None:
                await self.rebuild()
                values = [b"1", *await self._redis.mget(keys[1:])]
            return any(v is not None for v in values[1:])
        except redis.exceptions.RedisError:
            revoked = await self._pool.fetchval(_DB_CHECK, jti, grant_id, client_id, subject)
            return bool(revoked)

    async def rebuild(self) -> int:
        """Reload every revocation still relevant from PostgreSQL; return how many."""
        async with self._rebuild_lock:
            if await self._redis.exists(_READY):
                return 0
            rows = await self._pool.fetch(_REBUILD, self._window, self._skew)
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.set(_KEY_OF[row["kind"]](row["id"]), b"1", ex=max(1, row["ttl"]))
                pipe.set(_READY, b"1")
                await pipe.execute()
            log.info("token revocation set rebuilt", extra={"entries": len(rows)})
            return len(rows)
