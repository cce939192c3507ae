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

The servers are ``redis-server`` from the ``PATH`` (Debian's package; ``.ci/run`` installs it
when missing), with persistence off and ``cluster-node-timeout`` of 1 s so a failover takes a
few seconds. Blocking work runs in threads so the test's event loop stays free. Everything is
stopped and the temp folder removed when the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["RedisClusterUnderTest", "redis_cluster"]

NODE_TIMEOUT_MS = 1000


def _free_ports(count: int) -> list[int]:
    # Cluster nodes also listen on port + 10000 (the bus): both must be free.
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _port(address: str) -> int:
    """The port of a ``CLUSTER NODES`` address (``127.0.0.1:7000@17000``)."""
    return int(address.split("@")[0].rsplit(":", 1)[1])


def _cli(port: int, *args: str, timeout: float = 5) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


class RedisClusterUnderTest:
    """Six ``redis-server`` processes forming one cluster (see the module docstring)."""

    def __init__(self, folder: Path, ports: list[int]) -> None:
        self.folder = folder
        self.nodes = ports
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def seed_url(self) -> str:
        """The URL of one seed node (the first master)."""
        return f"redis://127.0.0.1:{self.nodes[0]}/0"

    def _start_node(self, port: int) -> None:
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self._processes[port] = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(folder),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--save", "",
                "--appendonly", "no",
                "--repl-diskless-sync-delay", "0",
                "--protected-mode", "no",
                "--logfile", str(folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.nodes]

    def start(self) -> None:
        """Start the six nodes and join them (blocking)."""
        for port in self.nodes:
            self._start_node(port)
        deadline = time.monotonic() + 15
        for port in self.nodes:
            while _cli(port, "PING").strip() != "PONG":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start")
                time.sleep(0.05)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *self._addresses(), "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        self._wait_ok(30)
        # A replica that never finished its first sync cannot take over: wait for every link.
        deadline = time.monotonic() + 30
        while sum("master_link_status:up" in _cli(p, "INFO", "replication") for p in self.nodes) < len(self.nodes) // 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the replicas did not finish their first sync")
            time.sleep(0.1)

    def _live(self) -> list[int]:
        return [p for p, proc in self._processes.items() if proc.poll() is None]

    def healthy(self) -> bool:
        """Whether every live node says ``cluster_state:ok`` and every slot range is served
        by a live master (after a kill: the replica has been promoted). Blocking, quick."""
        live = self._live()
        if not live:
            return False
        if not all("cluster_state:ok" in _cli(p, "CLUSTER", "INFO") for p in live):
            return False
        for line in _cli(live[0], "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and _port(fields[1]) not in live:
                return False  # a dead master still owns slots: no failover yet
        return True

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    async def wait_ok(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until :meth:`healthy` (after a kill: until the replica took over)."""
        await asyncio.to_thread(self._wait_ok, timeout)

    def masters(self) -> list[int]:
        """Ports of the masters currently serving slots (as the first live node sees it)."""
        out = _cli(self._live()[0], "CLUSTER", "NODES")
        ports = []
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                ports.append(_port(fields[1]))
        return ports

    def node_for_key(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        live = self._live()[0]
        slot = int(_cli(live, "CLUSTER", "KEYSLOT", key).strip())
        out = _cli(live, "CLUSTER", "NODES")
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                for span in fields[8:]:
                    if span.startswith("["):
                        continue
                    low, _, high = span.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return _port(fields[1])
        raise LookupError(f"no master serves slot {slot}")

    async def flush_node(self, port: int) -> None:
        """``FLUSHALL`` one node: that shard lost its data, the others did not."""
        out = await asyncio.to_thread(_cli, port, "FLUSHALL")
        if out.strip() != "OK":
            raise RuntimeError(f"FLUSHALL on {port}: {out!r}")

    async def kill_node(self, port: int) -> None:
        """``SIGKILL`` one node."""
        process = self._processes[port]
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)

    def stop_all(self) -> None:
        """Stop every node (blocking)."""
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        for process in self._processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


@contextlib.asynccontextmanager
async def redis_cluster() -> AsyncIterator[RedisClusterUnderTest]:
    """Start a 3-master, 3-replica cluster; stop it and remove its folder at the end."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli must be on the PATH (apt-get install redis-server)")
    # Short path: unix socket paths and logs stay readable; the folder is ours alone.
    folder = Path(tempfile.mkdtemp(prefix="occl-", dir=os.environ.get("TMPDIR", "/tmp")))
    cluster = RedisClusterUnderTest(folder, _free_ports(6))
    try:
        await asyncio.to_thread(cluster.start)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop_all)
        shutil.rmtree(folder, ignore_errors=True)
