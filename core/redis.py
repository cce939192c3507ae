"""The redis-py asyncio client: how OneCity connects to Redis, a single node or a Cluster.

One type for the domains: :data:`Redis`. With ``ONECITY_REDIS_CLUSTER=true`` the object is a
``redis.asyncio.cluster.RedisCluster`` (seeded by one node, discovering the rest), which speaks
the same commands; the domains never branch on the topology. What they must respect instead:

* every key an operation touches together (a Lua script, ``MULTI``, ``MGET``) shares one hash
  tag (``{...}``), so the keys map to one Cluster slot — on a single node the braces are just
  characters of the key;
* no ``EVALSHA`` inside a pipeline (redis-py refuses it in cluster mode): :class:`BatchedScript`
  pipelines script calls on a single node and sends them one by one to a Cluster.

Errors: a Cluster that is failing over or unreachable raises subclasses of
``redis.exceptions.RedisError`` (``ClusterDownError``, ``TryAgainError``, ``MovedError`` once
redirections run out, ``ConnectionError``, ``RedisClusterException``); :func:`is_unavailable`
says which of them mean "Redis is not usable now" (mapped to 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, cast

import redis.asyncio as redis_asyncio
import redis.exceptions as redis_exceptions
from redis.asyncio.cluster import RedisCluster

__all__ = [
    "BUCKETS",
    "BatchedScript",
    "Redis",
    "RedisCluster",
    "bucket_of",
    "cluster_state",
    "create_redis",
    "is_cluster",
    "is_unavailable",
    "pool_size",
]

Redis = redis_asyncio.Redis


#: Buckets of a revocation set. Each bucket is one hash tag (one Cluster slot) with its own
#: completeness marker, so a shard that lost its data is detected and only its buckets are
#: rebuilt from PostgreSQL. 16 spreads the set over every master of a small cluster.
BUCKETS = 16


def bucket_of(value: str) -> int:
    """The revocation bucket of an id.

    PostgreSQL computes the same as ``get_byte(sha256(convert_to(value, 'UTF8')), 0) % 16``
    (the rebuild of one bucket selects its rows that way).
    """
    return hashlib.sha256(value.encode()).digest()[0] % BUCKETS


def create_redis(url: str, *, max_connections: int = 64, cluster: bool = False) -> Redis:
    """A client for ``url`` (``redis://host:port/db`` or ``unix:///path?db=0``).

    Timeouts are short on purpose: Redis answers in microseconds, so a slow answer means it
    is gone, and a request should learn that in a second rather than hang.

    Args:
        url: The server, or with ``cluster`` one seed node of the Cluster.
        max_connections: Pool size; in a Cluster, per node (each node has its own pool).
        cluster: Use the Cluster client (slot map, MOVED/ASK redirections, failover).
    """
    if cluster:
        client = _BoundedCluster.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=1.0,
            socket_timeout=1.0,
            health_check_interval=15,
            decode_responses=False,
            # A failover takes a few seconds: redirections and reconnects are retried by
            # redis-py a bounded number of times, then the request answers 503 quickly.
            cluster_error_retry_attempts=3,
        )
        # RedisCluster speaks every command the domains use with the same signatures; one
        # declared type keeps them free of topology branches (see the module docstring).
        return cast(Redis, client)
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


class _BoundedCluster(RedisCluster):
    """A Cluster client whose commands queue for a free connection instead of failing.

    redis-py's per-node pools in cluster mode raise ``MaxConnectionsError`` once full (there
    is no blocking pool as for a single node); at most ``max_connections`` commands in flight
    per process keeps every node's pool within its size, and a burst waits instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_size = int(kwargs.get("max_connections", 100))
        self._in_flight = asyncio.Semaphore(self.pool_size)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            # Discover the slot map before the first command: redis-py lets concurrent first
            # commands race the discovery and closes connections under each other (observed
            # as ``AttributeError: 'NoneType' object has no attribute 'writelines'``).
            await self.initialize()
        async with self._in_flight:
            try:
                return await super().execute_command(*args, **kwargs)
            except AttributeError as exc:
                # The same redis-py race after a topology refresh (failover): a connection
                # closed by the refresh under a command. Redis is not usable for this
                # command; say so (503, retry) rather than crash (500).
                raise redis_exceptions.ConnectionError("Cluster connection reset during a topology refresh") from exc


def pool_size(client: Redis) -> int:
    """How many connections ``client`` may hold (per node for a Cluster)."""
    if isinstance(client, _BoundedCluster):
        return client.pool_size
    size = getattr(getattr(client, "connection_pool", None), "max_connections", None)
    return int(size) if size else 64


def is_cluster(client: Redis) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis (or a Cluster shard) cannot serve now, so the request
    should be retried later (503) rather than reported as a bug (500).

    A ``CROSSSLOT`` reply is included: it is our bug, but the request it failed did nothing,
    and a 503 tells the client to come back instead of showing a crash.
    """
    if isinstance(
        exc,
        redis_exceptions.ConnectionError
        | redis_exceptions.TimeoutError
        | redis_exceptions.ClusterError
        | redis_exceptions.ClusterDownError
        | redis_exceptions.TryAgainError
        | redis_exceptions.MovedError
        | redis_exceptions.AskError
        | redis_exceptions.RedisClusterException
        | redis_exceptions.CrossSlotTransactionError
        | redis_exceptions.MasterDownError
        | redis_exceptions.ReadOnlyError,
    ):
        return True
    if isinstance(exc, redis_exceptions.ResponseError):
        text = str(exc)
        return text.startswith(("CROSSSLOT", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK", "MASTERDOWN", "LOADING"))
    return False


async def cluster_state(client: Redis) -> str:
    """``"ok"`` when Redis can serve, else a short reason (for readiness).

    A single node must answer ``PING``; a Cluster must answer ``PING`` on every master it
    knows and report ``cluster_state:ok`` (all slots served).
    """
    if not isinstance(client, RedisCluster):
        await client.ping()
        return "ok"
    cluster = cast(RedisCluster, client)
    info = await cluster.cluster_info(target_nodes=RedisCluster.DEFAULT_NODE)
    if isinstance(info, dict) and info.get("cluster_state") not in ("ok", b"ok"):
        return "cluster_state:" + str(info.get("cluster_state"))
    pings = await cluster.ping(target_nodes=RedisCluster.PRIMARIES)
    if pings is not True and not (isinstance(pings, dict) and all(pings.values())):
        return "primary not answering"
    return "ok"


class BatchedScript:
    """One Lua script called by many concurrent callers (auto-pipelining on a single node).

    Like the scan log's group commit: a call made while no pipeline is in flight is sent at
    once; calls arriving meanwhile wait and go together in the next pipeline. Under load that
    turns hundreds of round trips (and hundreds of redis-py command dispatches, its main CPU
    cost) into a few, with one connection instead of one per request. A Cluster refuses
    ``EVALSHA`` in pipelines (and the keys of one batch live on many nodes), so there each call
    is sent on its own, concurrently.
    """

    _MAX_BATCH = 512

    def __init__(self, client: Redis, script: str) -> None:
        self._redis = client
        self._script = script
        self._sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        self._waiting: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._single = None if not is_cluster(client) else client.register_script(script)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """Run the script with ``keys`` (one hash slot) and ``args``; its reply."""
        if self._single is not None:
            return await self._single(keys=keys, args=args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._drain(), name="redis-script-batch")
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._MAX_BATCH], self._waiting[self._MAX_BATCH :]
            try:
                results = await self._send([(keys, args) for keys, args, _ in batch])
            except Exception as exc:  # every caller of the batch gets the failure
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _send(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        results = await self._pipeline(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, redis_exceptions.NoScriptError)]
        if missing:  # a restarted or failed-over Redis forgot the script: load it, resend those
            await self._redis.script_load(self._script)
            retried = await self._pipeline([calls[i] for i in missing])
            for index, result in zip(missing, retried, strict=True):
                results[index] = result
        return results

    async def _pipeline(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self._sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results
