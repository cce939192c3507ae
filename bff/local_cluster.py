"""A throwaway Redis Cluster on loopback ports: 3 masters + 3 replicas of ``redis-server``.

What the benchmark's ``--topology cluster`` runs against and what the topology tests start
(tests/support/redis_cluster.py adds the drills: flush a shard, kill a master). It lives here,
next to :mod:`bff.embedded`, so that both can use one starter without the benchmark importing
the test suite.

The servers are ``redis-server`` and ``redis-cli`` from the ``PATH`` (Debian's ``redis-server``
package), with persistence off and a ``cluster-node-timeout`` of 1 s so a failover takes a few
seconds. Every call here blocks; async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = [
    "NODE_TIMEOUT_MS",
    "LocalRedisCluster",
    "cluster_binaries_missing",
    "free_cluster_ports",
    "node_port",
    "redis_cli",
]

NODE_TIMEOUT_MS = 1000
_HOST = "127.0.0.1"


def cluster_binaries_missing() -> list[str]:
    """Which of ``redis-server`` and ``redis-cli`` are not on the ``PATH``."""
    return [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]


def free_cluster_ports(count: int) -> list[int]:
    """``count`` loopback ports that are free, each with its cluster bus port (+10000) free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind((_HOST, 0))
            port: int = sock.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((_HOST, port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def node_port(address: str) -> int:
    """The port of a ``CLUSTER NODES`` address (``127.0.0.1:7000@17000``)."""
    return int(address.split("@")[0].rsplit(":", 1)[1])


def _binary(name: str) -> str:
    return shutil.which(name) or name


def redis_cli(port: int, *args: str, timeout: float = 5) -> str:
    """Run ``redis-cli`` against one node; its standard output."""
    done = subprocess.run(  # noqa: S603 - redis-cli from the PATH, arguments of our own
        [_binary("redis-cli"), "-h", _HOST, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


class LocalRedisCluster:
    """Six ``redis-server`` processes joined into one cluster, each with its folder under ``folder``.

    Args:
        folder: Where each node keeps its ``nodes.conf`` and log (one sub-folder per port).
        ports: Six ports from :func:`free_cluster_ports` (the first three become masters).
    """

    def __init__(self, folder: Path, ports: list[int]) -> None:
        self.folder = folder
        self.nodes = ports
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def seed_url(self) -> str:
        """The URL of one seed node (the first master): what ``ONECITY_REDIS_URL`` names with
        ``ONECITY_REDIS_CLUSTER=true``."""
        return f"redis://{_HOST}:{self.nodes[0]}/0"

    def _start_node(self, port: int) -> None:
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self._processes[port] = subprocess.Popen(  # noqa: S603 - redis-server from the PATH, our arguments
            [
                _binary("redis-server"),
                "--port", str(port),
                "--bind", _HOST,
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

    def start(self) -> None:
        """Start the six nodes, join them, wait until every slot is served and every replica
        has finished its first sync.

        Raises:
            RuntimeError: A node did not start or ``redis-cli --cluster create`` failed.
            TimeoutError: The cluster did not become healthy in time.
        """
        for port in self.nodes:
            self._start_node(port)
        deadline = time.monotonic() + 15
        for port in self.nodes:
            while redis_cli(port, "PING").strip() != "PONG":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start (log: {self.folder / str(port)})")
                time.sleep(0.05)
        addresses = [f"{_HOST}:{p}" for p in self.nodes]
        created = subprocess.run(  # noqa: S603 - redis-cli from the PATH, our arguments
            [_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-1000:]}{created.stderr[-1000:]}")
        self.wait_healthy(30)
        # A replica that never finished its first sync cannot take over: wait for every link.
        deadline = time.monotonic() + 30
        while (
            sum("master_link_status:up" in redis_cli(p, "INFO", "replication") for p in self.nodes)
            < len(self.nodes) // 2
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the replicas did not finish their first sync")
            time.sleep(0.1)

    def live(self) -> list[int]:
        """Ports of the nodes whose process is still running."""
        return [p for p, proc in self._processes.items() if proc.poll() is None]

    def process(self, port: int) -> subprocess.Popen[bytes]:
        """The process of the node on ``port``."""
        return self._processes[port]

    def healthy(self) -> bool:
        """Whether every live node says ``cluster_state:ok`` and every slot range is served
        by a live master (after a kill: the replica has been promoted)."""
        live = self.live()
        if not live:
            return False
        if not all("cluster_state:ok" in redis_cli(p, "CLUSTER", "INFO") for p in live):
            return False
        for line in redis_cli(live[0], "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and node_port(fields[1]) not in live:
                return False  # a dead master still owns slots: no failover yet
        return True

    def wait_healthy(self, timeout_s: float) -> None:
        """Wait until :meth:`healthy`.

        Raises:
            TimeoutError: Not healthy within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node (SIGKILL: nothing is persisted anyway) and wait for each."""
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        for process in self._processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
