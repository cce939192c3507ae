"""A real Redis Cluster a test owns: 3 masters + 3 replicas on free loopback ports.

Usage::

    async with redis_cluster() as cluster:
        settings = ...(redis_url=cluster.seed_url, redis_cluster=True)
        port = cluster.node_for_key("oc:revoked:{revoked:3}:complete")   # the master holding that key
        await cluster.flush_node(port)                        # FLUSHALL that one shard
        await cluster.kill_node(port)                         # SIGKILL it; its replica takes over
        await cluster.wait_ok()                               # until cluster_state:ok again

API (everything a topology test needs, nothing else):

- ``seed_url``: ``redis://127.0.0.1:<port>/0`` of the first master (what ``ONECITY_REDIS_URL``
  names with ``ONECITY_REDIS_CLUSTER=true``).
- ``nodes``: the ports of all six nodes; ``masters()`` the ports of the current masters.
- ``node_for_key(key)``: the port of the master currently serving ``key``'s slot (hash tags
  honoured, asked with ``CLUSTER KEYSLOT`` / ``CLUSTER SHARDS``-equivalent ``CLUSTER SLOTS``).
- ``flush_node(port)``: ``FLUSHALL`` on that node only (a shard that lost its data).
- ``kill_node(port)``: ``SIGKILL`` that node (no snapshot, no goodbye).
- ``healthy()`` / ``wait_ok(timeout)``: every live node reports ``cluster_state:ok`` and every
  slot range is served by a live master (after ``kill_node``: the replica was promoted).
- ``stop_all()``: stop every node (a cluster that is down).

Starting, joining and stopping the nodes is :class:`bff.local_cluster.LocalRedisCluster` (the
benchmark's ``--topology cluster`` runs the same cluster); this module adds the drills. The
servers are ``redis-server`` from the ``PATH`` (Debian's package; ``.ci/run`` installs it when
missing). Blocking work runs in threads so the test's event loop stays free. Everything is
stopped and the temp folder removed when the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bff.local_cluster import LocalRedisCluster, cluster_binaries_missing, free_cluster_ports, node_port, redis_cli

__all__ = ["RedisClusterUnderTest", "redis_cluster"]


class RedisClusterUnderTest(LocalRedisCluster):
    """Six ``redis-server`` processes forming one cluster (see the module docstring)."""

    async def wait_ok(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until :meth:`healthy` (after a kill: until the replica took over)."""
        await asyncio.to_thread(self.wait_healthy, timeout)

    def masters(self) -> list[int]:
        """Ports of the masters currently serving slots (as the first live node sees it)."""
        out = redis_cli(self.live()[0], "CLUSTER", "NODES")
        ports = []
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                ports.append(node_port(fields[1]))
        return ports

    def node_for_key(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        live = self.live()[0]
        slot = int(redis_cli(live, "CLUSTER", "KEYSLOT", key).strip())
        out = redis_cli(live, "CLUSTER", "NODES")
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                for span in fields[8:]:
                    if span.startswith("["):
                        continue
                    low, _, high = span.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return node_port(fields[1])
        raise LookupError(f"no master serves slot {slot}")

    async def flush_node(self, port: int) -> None:
        """``FLUSHALL`` one node: that shard lost its data, the others did not."""
        out = await asyncio.to_thread(redis_cli, port, "FLUSHALL")
        if out.strip() != "OK":
            raise RuntimeError(f"FLUSHALL on {port}: {out!r}")

    async def kill_node(self, port: int) -> None:
        """``SIGKILL`` one node."""
        process = self.process(port)
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)

    def stop_all(self) -> None:
        """Stop every node (blocking)."""
        self.stop()


@contextlib.asynccontextmanager
async def redis_cluster() -> AsyncIterator[RedisClusterUnderTest]:
    """Start a 3-master, 3-replica cluster; stop it and remove its folder at the end."""
    if cluster_binaries_missing():
        raise RuntimeError("redis-server and redis-cli must be on the PATH (apt-get install redis-server)")
    # Short path: unix socket paths and logs stay readable; the folder is ours alone.
    folder = Path(tempfile.mkdtemp(prefix="occl-", dir=os.environ.get("TMPDIR", "/tmp")))
    cluster = RedisClusterUnderTest(folder, free_cluster_ports(6))
    try:
        await asyncio.to_thread(cluster.start)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop_all)
        shutil.rmtree(folder, ignore_errors=True)
