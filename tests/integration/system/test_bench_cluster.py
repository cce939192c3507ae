"""``python -m bench --topology cluster``: the benchmark's system on a Redis Cluster of its own.

A real start and stop of :class:`bench.system.System` (database, migrations, simulators, one
granian worker) with ``topology="cluster"``, alone and with ``--pgbouncer``: the BFF answers on
the cluster, what it writes lands on the cluster's masters, and stopping leaves no node, no
PgBouncer and no database behind.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from redis.asyncio.cluster import RedisCluster

from bench.system import System, SystemConfig
from bff.local_cluster import cluster_binaries_missing, node_port, redis_cli
from bff.local_pgbouncer import pgbouncer_binary
from tests.support.backends import DatabaseFactory

pytestmark = pytest.mark.skipif(
    bool(cluster_binaries_missing()), reason="redis-server and redis-cli are needed (.ci/run installs them)"
)

PHONE = "13912345678"


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _database_exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name))
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "pgbouncer",
    [
        False,
        pytest.param(
            True, marks=pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer is needed (.ci/run)")
        ),
    ],
    ids=["cluster", "cluster+pgbouncer"],
)
async def test_a_cluster_run_serves_on_the_cluster_and_stops_cleanly(
    tmp_path: Path, database_factory: DatabaseFactory, redis_url: str, pgbouncer: bool
) -> None:
    config = SystemConfig(database_factory.admin_url, redis_url, 1, tmp_path, topology="cluster", pgbouncer=pgbouncer)
    system = System(config)
    try:
        # start() blocks (it runs its own event loops): off this test's loop.
        await asyncio.to_thread(system.start)
        env = system.environment()
        assert env["ONECITY_REDIS_CLUSTER"] == "true"
        assert env["ONECITY_REDIS_URL"] == system.redis_url != redis_url
        seed = urlsplit(system.redis_url).port
        assert seed is not None
        nodes = [node_port(line.split()[1]) for line in redis_cli(seed, "CLUSTER", "NODES").splitlines()]
        assert len(nodes) == 6 and "cluster_state:ok" in redis_cli(seed, "CLUSTER", "INFO")
        assert system.topology.startswith("Redis Cluster (3 masters + 3 replicas")
        bouncer_port = urlsplit(env["ONECITY_DATABASE_URL"]).port
        if pgbouncer:
            # The API reaches PostgreSQL only through PgBouncer; migrations and the hall's
            # worker process use the direct URL.
            assert env["ONECITY_MIGRATE_DATABASE_URL"] == system.database_url
            assert bouncer_port != urlsplit(system.database_url).port
            assert env["ONECITY_DB_STATEMENT_CACHE_SIZE"] == "0" and env["ONECITY_HALL_WORKER"] == "false"
            assert "PgBouncer (transaction mode" in system.topology
            assert len(system.process_groups()["bff"]) == 2  # the API server and the hall worker
        else:
            assert env["ONECITY_DATABASE_URL"] == system.database_url
            assert "ONECITY_MIGRATE_DATABASE_URL" not in env and "PgBouncer" not in system.topology

        async with httpx.AsyncClient(base_url=system.base_url, timeout=15) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            # An OTP send writes its limits and the code's state to Redis: on the cluster.
            sent = await http.post("/v1/auth/otp", json={"phone": PHONE})
            assert sent.status_code == 202, sent.text
        keys = [key for port in nodes for key in redis_cli(port, "--scan", "--pattern", "oc:*").split()]
        assert keys, "the BFF wrote nothing to the cluster"

        # Preparation talks to the same cluster, with the Cluster client.
        ctx = system.context(duration_s=5, connections=4)
        client = ctx.redis()
        try:
            assert isinstance(client, RedisCluster)
            assert await client.exists(keys[0]) == 1
        finally:
            await client.aclose()
        database = system.database_name
    finally:
        await asyncio.to_thread(system.stop)
    assert not any(_accepts(port) for port in nodes)
    assert bouncer_port is not None and (not pgbouncer or not _accepts(bouncer_port))
    assert not await _database_exists(database_factory.admin_url, database)
