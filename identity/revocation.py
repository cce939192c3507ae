"""One revocation set: what can make an otherwise valid access token dead before it expires.

Five kinds of revocation, each recorded in PostgreSQL first:

==========  =============================================  ===============================
kind        what dies                                      record
==========  =============================================  ===============================
``sid``     a citizen session's access tokens (logout)     ``sessions.ended_at``
``jti``     one partner token (RFC 7009)                   ``oauth_revoked_tokens``
``grant``   a grant's tokens (consent withdrawn, replay)   ``oauth_grants.revoked_at``
``client``  every token of a client (``clients disable``)  ``oauth_clients.disabled_at``
``staff``   a staff member's tokens (``staff disable``)    ``staff.disabled_at``
==========  =============================================  ===============================

Redis holds one key per revocation for as long as a token it kills could still be unexpired
(the *window*: the longest access token lifetime plus clock skew), so the check on every
request is one Redis round trip. The keys are spread over :data:`~core.redis.BUCKETS` buckets
by a hash of ``<kind>:<id>``; each bucket is one hash tag (``oc:revoked:{revoked:<n>}:...``,
one Redis Cluster slot) with its own completeness marker, read together with the keys in one
``MGET``. Three failures, one rule each:

* **Redis (or one Cluster shard) lost its data**: the markers of its buckets are gone, and a
  bucket without its marker is rebuilt from PostgreSQL before it is believed.
* **Redis unreachable**: the check asks PostgreSQL (fail closed only when both are down).
* **Redis back from its snapshot**: the markers are there, but not the revocations made while
  it was away. A process that could not reach Redis (a revocation it could not write, a check
  that fell back) drops every marker once Redis answers again, so every bucket is rebuilt.

The marker's value is the window the bucket was built with: a process that revokes without
knowing the serving window (``onecity clients disable``, ``onecity staff disable``) keeps its
keys exactly as long as the serving processes would (:meth:`RevocationSet.for_administration`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec
import redis.exceptions

from core.db import Pool
from core.redis import BUCKETS, Redis, bucket_of
from identity.repository import RevocationRecord

if TYPE_CHECKING:
    from litestar.datastructures import State

__all__ = [
    "ACCESS_TOKENS",
    "CLIENTS",
    "GRANTS",
    "KINDS",
    "SESSIONS",
    "STAFF",
    "RevocationKind",
    "RevocationSet",
    "revocation_window_s",
    "revocations_of",
]

# RedisClusterException ("cannot connect to the cluster") is not a RedisError.
_REDIS_DOWN = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)

log = logging.getLogger("onecity.identity.revocation")

# A kind's name is part of Redis keys and of the rebuild query.
_KIND_NAME = re.compile(r"[a-z]{1,16}")


class RevocationKind(msgspec.Struct, frozen=True, kw_only=True):
    """One kind of revocation and where PostgreSQL records it.

    Attributes:
        name: Part of the Redis key (``<name>:<id>``); short and fixed forever.
        recent: SQL selecting ``id`` (text) and ``ttl`` (seconds, ≥ 1) of every revocation
            of this kind a token could still be presented against. ``$1`` is the window and
            ``$2`` the skew, in seconds (parameters, so that a range on an indexed column is
            an index range scan).
        lookup: SQL answering one boolean, never ``NULL``: whether ``$1`` (an id, text) is
            revoked according to PostgreSQL (the check while Redis is unreachable).
    """

    name: str
    recent: str
    lookup: str


#: Ended citizen sessions. A session the record does not know counts as ended.
SESSIONS = RevocationKind(
    name="sid",
    recent="""SELECT id::text AS id, GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - ended_at))::int AS ttl
              FROM sessions WHERE ended_at > now() - make_interval(secs => $1)""",
    lookup="""SELECT COALESCE((SELECT ended_at IS NOT NULL OR expires_at <= now()
                               FROM sessions WHERE id = $1::uuid), true)""",
)
#: Partner access tokens revoked one by one (RFC 7009), kept until they would have expired.
ACCESS_TOKENS = RevocationKind(
    name="jti",
    recent="""SELECT jti AS id, GREATEST(1, EXTRACT(EPOCH FROM expires_at - now()))::int + $2 AS ttl
              FROM oauth_revoked_tokens
              WHERE expires_at > now() - make_interval(secs => $2)""",
    lookup="SELECT EXISTS (SELECT 1 FROM oauth_revoked_tokens WHERE jti = $1)",
)
#: Revoked partner grants (``sid`` of partner tokens): consent withdrawn, a replayed code or
#: refresh token, an identity corrected, a client disabled.
GRANTS = RevocationKind(
    name="grant",
    recent="""SELECT id::text AS id, GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - revoked_at))::int AS ttl
              FROM oauth_grants WHERE revoked_at > now() - make_interval(secs => $1)""",
    lookup="SELECT EXISTS (SELECT 1 FROM oauth_grants WHERE id::text = $1 AND revoked_at IS NOT NULL)",
)
#: Disabled partner clients (``client_id`` of their tokens).
CLIENTS = RevocationKind(
    name="client",
    recent="""SELECT client_id AS id,
                     GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - disabled_at))::int AS ttl
              FROM oauth_clients WHERE disabled_at > now() - make_interval(secs => $1)""",
    lookup="SELECT EXISTS (SELECT 1 FROM oauth_clients WHERE client_id = $1 AND disabled_at IS NOT NULL)",
)
#: Disabled staff members (``sub`` of staff and enrolment tokens: the staff id).
STAFF = RevocationKind(
    name="staff",
    recent="""SELECT id::text AS id, GREATEST(1, $1 - EXTRACT(EPOCH FROM now() - disabled_at))::int AS ttl
              FROM staff WHERE disabled_at > now() - make_interval(secs => $1)""",
    lookup="SELECT EXISTS (SELECT 1 FROM staff WHERE id::text = $1 AND disabled_at IS NOT NULL)",
)
#: Every kind identity revokes: the app's one set holds them all.
KINDS: tuple[RevocationKind, ...] = (SESSIONS, ACCESS_TOKENS, GRANTS, CLIENTS, STAFF)


def revocation_window_s(*access_token_ttls_s: int, clock_skew_s: int) -> int:
    """How long a revocation must be kept: the longest access token lifetime any revoked
    token could have, plus the clock skew verification tolerates.

    Args:
        access_token_ttls_s: The lifetimes of every kind of access token the set checks.
        clock_skew_s: The ``exp`` leeway of token verification.
    """
    return max(access_token_ttls_s) + clock_skew_s


def _tag(bucket: int) -> str:
    return f"oc:revoked:{{revoked:{bucket}}}"


def _marker(bucket: int) -> str:
    return f"{_tag(bucket)}:complete"


def _entry(kind: RevocationKind, value: str) -> tuple[int, str]:
    """The bucket and the key of one revocation."""
    bucket = bucket_of(f"{kind.name}:{value}")
    return bucket, f"{_tag(bucket)}:{kind.name}:{value}"


def _rebuild_query(kinds: Sequence[RevocationKind]) -> str:
    """One query reloading a bucket from every kind's ``recent`` SQL.

    Composed only of the kinds' constant SQL and their names (checked against
    :data:`_KIND_NAME`), never of input. The bucket test is :func:`core.redis.bucket_of` in
    SQL: the first byte of SHA-256 modulo ``$4`` (``BUCKETS``). The unused CTE gives ``$1`` and
    ``$2`` their type whichever of them the kinds read.
    """
    parts = "\nUNION ALL\n".join(
        f"SELECT '{kind.name}' AS kind, id, ttl FROM ({kind.recent}) AS k{n}"  # noqa: S608 - constants
        for n, kind in enumerate(kinds)
    )
    return f"""WITH typed AS (SELECT $1::int AS window_s, $2::int AS skew_s)
SELECT kind, id, ttl FROM (
{parts}
) AS entries WHERE get_byte(sha256(convert_to(kind || ':' || id, 'UTF8')), 0) % $4::int = $3::int"""  # noqa: S608 - constants


class RevocationSet:
    """The revocation set: every kind in one set of buckets, rebuilt together.

    Use one set per process (the app builds it in :func:`bff.domains.attach_domains`): the
    rebuild locks and the "Redis was unreachable" flag are the set's.

    Args:
        redis: The Redis client.
        pool: The PostgreSQL pool (the record).
        window_s: :func:`revocation_window_s` of the serving configuration.
        kinds: What the set holds (default: every kind of :data:`KINDS`). A bucket is rebuilt
            from every kind at once, so all processes sharing a Redis must use the same kinds.
        skew_s: Added to a revoked token's own expiry.
    """

    def __init__(
        self,
        redis: Redis,
        pool: Pool,
        *,
        window_s: int | None,
        kinds: Sequence[RevocationKind] = KINDS,
        skew_s: int = 30,
    ) -> None:
        if window_s is not None and window_s < 1:
            raise ValueError("window_s must be at least 1 second")
        names = [kind.name for kind in kinds]
        if not names or len(set(names)) != len(names) or not all(_KIND_NAME.fullmatch(n) for n in names):
            raise ValueError("a revocation set needs kinds with distinct names of lower-case letters")
        self._redis = redis
        self._record = RevocationRecord(pool)
        self._window = window_s
        self._skew = skew_s
        self._kinds = tuple(kinds)
        self._rebuild = _rebuild_query(self._kinds)
        self._rebuild_locks = [asyncio.Lock() for _ in range(BUCKETS)]
        # Set when Redis was unreachable from this process: revocations may have been made
        # meanwhile (in PostgreSQL) without their key, so every bucket is rebuilt before it is
        # trusted again (by the next check, or by :meth:`repair_forever` as soon as Redis
        # answers, whichever comes first).
        self._incomplete = False
        self._unreachable = asyncio.Event()

    @classmethod
    def for_administration(cls, redis: Redis | None, pool: Pool) -> RevocationSet:
        """The set as an administration command (``onecity clients``/``staff``) writes it.

        Such a process does not know the serving processes' window: each key lives as long as
        the window stored in its bucket's marker, and into a bucket without a marker nothing
        is written (it is rebuilt from PostgreSQL, which has the revocation, before anyone
        believes it). It never checks or rebuilds.

        Raises:
            ValueError: no Redis: the revocation could not reach the serving processes.
        """
        if redis is None:
            raise ValueError("revocations need Redis (ONECITY_REDIS_URL): serving processes check them there")
        return cls(redis, pool, window_s=None)

    @property
    def window_s(self) -> int | None:
        """How long a revocation is kept in Redis (``None``: as its bucket's marker says)."""
        return self._window

    # revoking -------------------------------------------------------------------------------

    async def revoke(self, kind: RevocationKind, ids: Iterable[str], *, expires_at: float | None = None) -> None:
        """Mark ids of ``kind`` revoked in Redis (call after PostgreSQL recorded them).

        Args:
            kind: One of the set's kinds.
            ids: What was revoked.
            expires_at: For one token (``jti``): when it expires anyway; the key is kept that
                long plus the skew instead of the whole window.
        """
        self._require(kind)
        keys_by_bucket: dict[int, list[str]] = {}
        for value in ids:
            bucket, key = _entry(kind, value)
            keys_by_bucket.setdefault(bucket, []).append(key)
        if not keys_by_bucket:
            return
        ttl = None if expires_at is None else max(1, int(expires_at - time.time()) + self._skew)
        try:
            # One single-slot pipeline per bucket (a Cluster routes each to its shard).
            await asyncio.gather(*(self._write(b, keys, ttl) for b, keys in keys_by_bucket.items()))
        except _REDIS_DOWN:
            # PostgreSQL has it: checks fall back to it while Redis is away, and this process
            # has every bucket rebuilt once Redis answers.
            self._mark_incomplete()
            log.warning("revocation not written to Redis; PostgreSQL remains authoritative", extra={"kind": kind.name})

    async def _write(self, bucket: int, keys: list[str], ttl: int | None) -> None:
        window = self._window
        if window is None:
            marked = await self._redis.get(_marker(bucket))
            if marked is None:
                return  # rebuilt from PostgreSQL before anyone believes this bucket
            window = int(marked)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, b"1", ex=min(ttl, window) if ttl is not None else window)
            await pipe.execute()

    # checking -------------------------------------------------------------------------------

    async def is_revoked(self, *entries: tuple[RevocationKind, str | None]) -> bool:
        """Whether any of ``(kind, id)`` is revoked (``None`` ids are skipped).

        One ``MGET`` per bucket involved (marker and keys together), the buckets concurrently;
        a bucket without its marker is rebuilt first. Redis unreachable: PostgreSQL answers.
        """
        wanted = [(kind, value) for kind, value in entries if value is not None]
        for kind, _ in wanted:
            self._require(kind)
        if self._window is None:
            raise RuntimeError("an administration revocation set does not check tokens")
        keys_by_bucket: dict[int, list[str]] = {}
        for kind, value in wanted:
            bucket, key = _entry(kind, value)
            keys_by_bucket.setdefault(bucket, []).append(key)
        try:
            if self._incomplete:
                await self._drop_markers()
            if len(keys_by_bucket) == 1:  # a citizen's token: no task for one round trip
                [(bucket, keys)] = keys_by_bucket.items()
                return await self._bucket_has(bucket, keys)
            found = await asyncio.gather(*(self._bucket_has(b, keys) for b, keys in keys_by_bucket.items()))
            return any(found)
        except _REDIS_DOWN:
            self._mark_incomplete()
            return await self._is_revoked_in_database(wanted)

    async def _bucket_has(self, bucket: int, keys: list[str]) -> bool:
        """Whether any of ``keys`` (all in ``bucket``) is set; rebuilds the bucket first when
        its marker is gone. One ``MGET``, one slot."""
        values = await self._redis.mget(_marker(bucket), *keys)
        if values[0] is None:
            await self.rebuild(bucket)
            values = [b"1", *await self._redis.mget(keys)]
        return any(v is not None for v in values[1:])

    async def _is_revoked_in_database(self, entries: list[tuple[RevocationKind, str]]) -> bool:
        return await self._record.any_revoked((kind.lookup, value) for kind, value in entries)

    # rebuilding -----------------------------------------------------------------------------

    def _mark_incomplete(self) -> None:
        self._incomplete = True
        self._unreachable.set()

    async def _drop_markers(self) -> None:
        """Have every bucket rebuilt, by every process (the rebuild is idempotent)."""
        # Cleared first: a failure while dropping sets it again.
        self._incomplete = False
        self._unreachable.clear()
        try:
            await self._redis.delete(*(_marker(b) for b in range(BUCKETS)))
        except _REDIS_DOWN:
            self._mark_incomplete()
            raise
        log.warning("revocation buckets dropped after Redis was unreachable; they are rebuilt from PostgreSQL")

    async def repair_forever(self, *, every_s: float = 0.5) -> None:
        """Once this process found Redis unreachable, ask it every ``every_s`` until it
        answers, then have every bucket rebuilt: a Redis back from its snapshot is repaired
        even if this process serves no request that needs it. Runs until cancelled."""
        while True:
            await self._unreachable.wait()
            with contextlib.suppress(*_REDIS_DOWN):
                if self._incomplete:
                    await self._drop_markers()
                else:
                    self._unreachable.clear()
            if self._unreachable.is_set():
                await asyncio.sleep(every_s)

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """Start :meth:`repair_forever` and return its task, for the owner of the process's
        resources to cancel at shutdown."""
        return [asyncio.create_task(self.repair_forever(), name="revocation-repair")]

    async def rebuild(self, bucket: int | None = None) -> int:
        """Reload the revocations still relevant from PostgreSQL into one bucket whose marker
        is missing (``None``: every such bucket); return how many were written."""
        window = self._window
        if window is None:
            raise RuntimeError("an administration revocation set does not rebuild")
        if bucket is None:
            return sum([await self.rebuild(b) for b in range(BUCKETS)])
        async with self._rebuild_locks[bucket]:
            if await self._redis.exists(_marker(bucket)):
                return 0
            recent = await self._record.recent(
                self._rebuild, window_s=window, skew_s=self._skew, bucket=bucket, buckets=BUCKETS
            )
            async with self._redis.pipeline(transaction=False) as pipe:  # one slot: the bucket's
                for entry in recent:
                    pipe.set(f"{_tag(bucket)}:{entry.kind}:{entry.id}", b"1", ex=max(1, entry.ttl))
                pipe.set(_marker(bucket), str(window).encode())
                await pipe.execute()
            log.info("revocation bucket rebuilt", extra={"bucket": bucket, "entries": len(recent)})
            return len(recent)

    # helpers --------------------------------------------------------------------------------

    @staticmethod
    def marker_of(kind: RevocationKind, value: str) -> str:
        """The completeness marker of the bucket holding ``value`` of ``kind`` (operations and
        tests: flushing the shard that holds it loses that bucket)."""
        return _marker(_entry(kind, value)[0])

    def _require(self, kind: RevocationKind) -> None:
        if kind not in self._kinds:
            raise ValueError(f"this revocation set does not hold the kind {kind.name!r}")


def revocations_of(state: State) -> RevocationSet:
    """The app's revocation set, which :func:`bff.domains.attach_domains` puts on its state at
    start-up.

    Raises:
        RuntimeError: the app was assembled without one. A token check never passes for want
            of a set.
    """
    revocations = state.get("revocations")
    if not isinstance(revocations, RevocationSet):
        raise RuntimeError("the app has no revocation set (state.revocations): tokens cannot be checked")
    return revocations
