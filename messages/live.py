"""Live delivery: wake-ups through Redis pub/sub, one subscription per process.

A producer commits its message to PostgreSQL and then publishes the account id on one Redis
channel. Every process subscribes once (:class:`WakeHub`) and wakes only the streams it holds
for that account; a woken stream reads ``id > last sent`` from PostgreSQL. The inbox id is the
SSE id, so a lost wake-up delays a message (each stream also catches up on every keep-alive)
but can never reorder, skip or repeat one. In Redis Cluster a PUBLISH reaches every node's
subscribers, so the single channel needs no hash tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any, Final

from core.redis import Redis

__all__ = ["WAKE_CHANNEL", "StreamSlots", "WakeHub"]

log = logging.getLogger("onecity.messages.live")

WAKE_CHANNEL: Final = "oc:msg:wake"


class WakeHub:
    """This process's subscription: ``account_id`` → the events of its open streams.

    Args:
        redis: The shared client (the hub takes one pub/sub connection from it).
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        while True:
            pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(WAKE_CHANNEL)
                self._ready.set()
                # A reconnect may have missed wake-ups: wake everyone once to catch up.
                self._wake_all()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    account = data.decode() if isinstance(data, bytes) else str(data)
                    for event in self._waiters.get(account, ()):
                        event.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("message wake-up subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def register(self, account_id: str) -> asyncio.Event:
        """An event set whenever a message for ``account_id`` may be new."""
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="messages-wake-hub")
        event = asyncio.Event()
        self._waiters[account_id].add(event)
        # Subscribed before the caller's first read from PostgreSQL: nothing committed after
        # that read can go unnoticed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=2.0)
        return event

    def unregister(self, account_id: str, event: asyncio.Event) -> None:
        """Forget one stream's event."""
        events = self._waiters.get(account_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiters[account_id]

    @property
    def streams(self) -> int:
        """Streams open in this process."""
        return sum(len(v) for v in self._waiters.values())

    async def close(self) -> None:
        """Stop the subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class StreamSlots:
    """At most ``limit`` concurrent streams per citizen, across every process.

    One sorted set per account (``oc:msg:{<account>}:streams``, stream id → lease expiry);
    expired leases (a crashed process) are dropped before counting.
    """

    def __init__(self, redis: Redis, *, limit: int, lease_s: float) -> None:
        self._redis = redis
        self.limit = limit
        self.lease_s = lease_s

    @staticmethod
    def _key(account_id: str) -> str:
        return f"oc:msg:{{{account_id}}}:streams"

    async def acquire(self, account_id: str, stream_id: str) -> bool:
        """Take a slot; ``False`` when the citizen already holds ``limit`` streams."""
        key = self._key(account_id)
        now = time.time()
        pipe: Any = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {stream_id: now + self.lease_s})
        pipe.zcard(key)
        pipe.expire(key, int(self.lease_s) + 1)
        results = await pipe.execute()
        if int(results[2]) > self.limit:
            await self._redis.zrem(key, stream_id)
            return False
        return True

    async def renew(self, account_id: str, stream_id: str) -> None:
        """Extend a held slot's lease."""
        key = self._key(account_id)
        await self._redis.zadd(key, {stream_id: time.time() + self.lease_s})
        await self._redis.expire(key, int(self.lease_s) + 1)

    async def release(self, account_id: str, stream_id: str) -> None:
        """Give a slot back."""
        await self._redis.zrem(self._key(account_id), stream_id)
