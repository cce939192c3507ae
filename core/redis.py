"""The redis-py asyncio client: how OneCity connects to Redis."""

from __future__ import annotations

import redis.asyncio as redis_asyncio

__all__ = ["Redis", "create_redis"]

Redis = redis_asyncio.Redis


def create_redis(url: str, *, max_connections: int = 64) -> Redis:
    """A client for ``url`` (``redis://host:port/db`` or ``unix:///path?db=0``).

    Timeouts are short on purpose: Redis answers in microseconds, so a slow answer means it
    is gone, and a request should learn that in a second rather than hang.
    """
    # A blocking pool: a burst beyond ``max_connections`` waits (up to the timeout) for a
    # free connection instead of failing with "Too many connections".
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=2.0,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=15,
    )
    return redis_asyncio.Redis(connection_pool=pool, decode_responses=False)
