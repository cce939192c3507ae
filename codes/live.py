"""The short-lived state of codes in Redis: revocation, one-time use, holder cache, current codes.

Verification reads everything it needs about a code in **one** round trip (a Lua script): is
the ``jti`` revoked, may it be consumed (``SET NX``: two gates scanning the same code at the same
instant get exactly one success), and the holder's cached current status and masked name.

Every key of one code subject carries the hash tag ``{<ct>:<sub>}``, so the script's keys share
a Redis Cluster slot. Layout (``T`` a type letter, ``S`` a pseudonym):

- ``oc:c:{T:S}:h`` holder cache (:class:`HolderEntry`, msgspec JSON), ``holder_cache_ttl_s``
- ``oc:c:{T:S}:live`` sorted set jti → exp of codes issued and not yet expired
- ``oc:c:{T:S}:rev`` sorted set jti → exp of revoked codes (until they expire anyway)
- ``oc:c:{T:S}:u:<jti>`` one-time-use marker, until the code expires
- ``oc:codes:cur:<account>:<type>`` the citizen's current code (for the image endpoint)
- ``oc:codes:issue:<account>:<type>:<minute>`` issue rate counter
- ``oc:codes:pop:<nonce>`` device proof-of-possession challenges

Losing Redis loses at most a few minutes of revocations and one-time-use markers (codes live at
most 300 s); the holder cache and current codes are rebuilt from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Literal, TypeVar

import msgspec
from redis import exceptions as redis_exceptions

from core.redis import BatchedScript, Redis, pool_size

__all__ = ["CheckOutcome", "CurrentCode", "HolderEntry", "LiveCodes"]

CheckOutcome = Literal["ok", "revoked", "replayed"]
_T = TypeVar("_T")

#: Longest life of a holder code plus margin: how long a revocation must be remembered.
_REVOCATION_TTL_S = 300 + 120

# One bulk string back (outcome letter + cached holder JSON): the cheapest reply to parse.
_CHECK = """
local holder = redis.call('GET', KEYS[3]) or ''
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'v' .. holder end
if ARGV[2] == '1' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then return 'p' .. holder end
end
return 'o' .. holder
"""
_OUTCOMES: dict[int, CheckOutcome] = {ord("o"): "ok", ord("v"): "revoked", ord("p"): "replayed"}

_REVOKE_ALL = """
local live = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES')
for i = 1, #live, 2 do redis.call('ZADD', KEYS[2], live[i + 1], live[i]) end
redis.call('DEL', KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return #live / 2
"""


class HolderEntry(msgspec.Struct, frozen=True, array_like=True):
    """What verification needs about a code's subject, cached.

    Attributes:
        account_id: The holder's account (``None`` for venues).
        name: Masked holder name, or the venue's name.
        status: The current status (``G``/``Y``/``R``, ``A``/``X``).
        jti: Venue codes only: the one ``jti`` currently printed for the venue.
    """

    account_id: str | None
    name: str | None
    status: str
    jti: str | None = None


class CurrentCode(msgspec.Struct, frozen=True):
    """The citizen's latest code of one type, kept until its refresh time."""

    payload: str
    status: str
    iat: int
    exp: int
    refresh_after: int
    reasons: tuple[str, ...] = ()
    rule_version: int | None = None


_holder_decoder = msgspec.json.Decoder(HolderEntry)
_current_decoder = msgspec.json.Decoder(CurrentCode)
_encode = msgspec.json.encode


def _decode(decoder: msgspec.json.Decoder[_T], raw: bytes | str | None) -> _T | None:
    """A cached value, or ``None`` when absent or unreadable (a value written by another
    version during a rolling deploy is a cache miss, not an error)."""
    if not raw:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def _tag(code_type: str, subject: str) -> str:
    return f"oc:c:{{{code_type}:{subject}}}"


class LiveCodes:
    """Redis operations of the codes domain.

    Args:
        redis: The shared client.
        holder_ttl_s: Life of a cached holder entry.
        skew_s: Clock tolerance; markers live until ``exp + skew``.
    """

    def __init__(self, redis: Redis, *, holder_ttl_s: int, skew_s: int) -> None:
        self._redis = redis
        self._holder_ttl = holder_ttl_s
        self._skew = skew_s
        self._check = BatchedScript(redis, _CHECK)
        self._revoke_all = redis.register_script(_REVOKE_ALL)
        # redis-py's pool fails a command outright ("Too many connections") once every
        # connection is busy; a burst of verifications must queue instead. Three quarters of
        # the pool: the other domains sharing the client keep some connections.
        limit = pool_size(redis)
        self._slots = asyncio.Semaphore(max(1, limit * 3 // 4))

    async def _bounded(self, operation: Awaitable[_T]) -> _T:
        async with self._slots:
            return await operation

    # verification -----------------------------------------------------------------------------

    async def check(
        self, code_type: str, subject: str, jti: str, *, exp: int, consume: bool, now: float
    ) -> tuple[CheckOutcome, HolderEntry | None]:
        """Revocation, one-time use (when ``consume``) and the cached holder, atomically.

        Returns:
            ``("revoked" | "replayed" | "ok", cached holder or None)``.
        """
        tag = _tag(code_type, subject)
        ttl = max(1, int(exp + self._skew - now) + 1)
        reply = await self._check([f"{tag}:rev", f"{tag}:u:{jti}", f"{tag}:h"], [jti, "1" if consume else "0", ttl])
        raw = reply if isinstance(reply, bytes) else str(reply).encode()
        return _OUTCOMES[raw[0]], _decode(_holder_decoder, raw[1:])

    async def release(self, code_type: str, subject: str, jti: str) -> None:
        """Undo a consume whose verification was not answered (best effort: if Redis is gone,
        so is the marker's effect on anyone else)."""
        with contextlib.suppress(redis_exceptions.RedisError, OSError):
            await self._redis.delete(f"{_tag(code_type, subject)}:u:{jti}")

    async def put_holder(self, code_type: str, subject: str, entry: HolderEntry, *, ttl_s: int | None = None) -> None:
        """Cache a holder entry (after a miss, an issue, or a status change), at most ``ttl_s``."""
        ttl = self._holder_ttl if ttl_s is None else max(1, min(ttl_s, self._holder_ttl))
        await self._bounded(self._redis.set(f"{_tag(code_type, subject)}:h", _encode(entry), ex=ttl))

    async def forget_holder(self, code_type: str, subject: str) -> None:
        """Drop a cached holder entry (next verification reloads it)."""
        await self._redis.delete(f"{_tag(code_type, subject)}:h")

    # issuing ---------------------------------------------------------------------------------

    async def record_issue(
        self,
        *,
        code_type: str,
        subject: str,
        jti: str,
        holder: HolderEntry,
        account_id: str,
        api_name: str,
        current: CurrentCode,
        now: float,
    ) -> None:
        """Remember a new code (for revoke-all), refresh the holder cache, keep it as current."""
        tag = _tag(code_type, subject)
        # One pipeline per slot (the subject's hash tag; the account's current code), sent
        # together: a Cluster never sees a cross-slot pipeline.
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(f"{tag}:live", {jti: current.exp})
        pipe.zremrangebyscore(f"{tag}:live", "-inf", f"({int(now) - self._skew}")
        pipe.expire(f"{tag}:live", _REVOCATION_TTL_S)
        pipe.set(f"{tag}:h", _encode(holder), ex=self._holder_ttl)
        await asyncio.gather(
            self._bounded(pipe.execute()),
            self._bounded(
                self._redis.set(
                    self._current_key(account_id, api_name),
                    _encode(current),
                    ex=max(1, current.refresh_after - int(now)),
                )
            ),
        )

    @staticmethod
    def _current_key(account_id: str, api_name: str) -> str:
        return f"oc:codes:cur:{account_id}:{api_name}"

    async def current(self, account_id: str, api_name: str) -> CurrentCode | None:
        """The citizen's current code of a type, while before its refresh time."""
        raw = await self._bounded(self._redis.get(self._current_key(account_id, api_name)))
        return _decode(_current_decoder, raw)

    async def drop_current(self, account_id: str, api_name: str) -> None:
        """Forget the current code (its status changed: the next request issues a new one)."""
        await self._redis.delete(self._current_key(account_id, api_name))

    async def take_issue_slot(self, account_id: str, api_name: str, *, limit: int) -> int | None:
        """Count an issue request; ``None`` if allowed, else seconds until the next minute."""
        now = int(time.time())
        key = f"oc:codes:issue:{account_id}:{api_name}:{now // 60}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 61)
        count, _ = await self._bounded(pipe.execute())
        return None if int(count) <= limit else 60 - now % 60

    async def take_checkin_slot(self, account_id: str, *, limit: int) -> int | None:
        """Count a check-in of the citizen this hour; ``None`` if allowed, else seconds until the
        next hour. ``INCR`` and ``EXPIRE`` run as one ``MULTI`` transaction: concurrent requests
        of every process share the count and none is lost."""
        now = int(time.time())
        key = f"oc:codes:checkin:{account_id}:{now // 3600}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 3601)
        count, _ = await self._bounded(pipe.execute())
        return None if int(count) <= limit else 3600 - now % 3600

    # revocation ------------------------------------------------------------------------------

    async def revoke_all(self, code_type: str, subject: str, *, now: float) -> int:
        """Revoke every unexpired code of one holder and type; returns how many."""
        tag = _tag(code_type, subject)
        count = await self._revoke_all(
            keys=[f"{tag}:live", f"{tag}:rev"], args=[int(now) - self._skew, _REVOCATION_TTL_S]
        )
        return int(count)

    async def revoke(self, code_type: str, subject: str, jti: str, *, exp: int) -> None:
        """Revoke one code."""
        tag = _tag(code_type, subject)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(f"{tag}:rev", {jti: exp})
        pipe.expire(f"{tag}:rev", _REVOCATION_TTL_S)
        await pipe.execute()

    # device challenges -----------------------------------------------------------------------

    async def put_challenge(self, nonce: str, account_id: str, *, ttl_s: int) -> None:
        """Remember a proof-of-possession nonce for ``account_id``."""
        await self._redis.set(f"oc:codes:pop:{nonce}", account_id.encode(), ex=ttl_s)

    async def take_challenge(self, nonce: str) -> str | None:
        """Spend a nonce (once); the account it was issued to, or ``None``."""
        raw = await self._redis.getdel(f"oc:codes:pop:{nonce}")
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
