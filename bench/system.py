"""The system under test, started for one run and removed after it.

:class:`System` creates a fresh database on the configured PostgreSQL, runs ``onecity
migrate`` and ``onecity keys ensure`` with a master key made for the run, starts the seven
department simulators and the BFF (``onecity serve``, granian) as separate processes on
free loopback ports, and waits until ``/health/ready`` answers. :meth:`System.stop` ends
every process it started, deletes the app's keys from the bench Redis database and drops
the database. Every wait has a deadline.

Topology ``cluster`` (``--topology cluster``) runs the BFF against a Redis Cluster of its own
instead (3 masters + 3 replicas of ``redis-server`` on free ports, started first and stopped
last, :mod:`bff.local_cluster`) with ``ONECITY_REDIS_CLUSTER=true``, as a city does. With
``pgbouncer`` (``--pgbouncer``) the BFF reaches the database through a transaction-mode
PgBouncer (:mod:`bff.local_pgbouncer`, statement cache off, migrations on the direct URL), and
the service hall's job worker runs in a ``onecity serve`` process of its own on the direct
connection, since LISTEN does not pass a transaction pooler (docs/service-hall.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

import asyncpg
import httpx
import redis

from bench.context import BenchContext
from bff.local_cluster import LocalRedisCluster, cluster_binaries_missing, free_cluster_ports
from bff.local_pgbouncer import pgbouncer_binary, write_pgbouncer_config
from bff.settings import ENVIRONMENT
from services.departments.container import DEPARTMENTS

__all__ = [
    "DEFAULT_ADMIN_DATABASE_URL",
    "DEFAULT_REDIS_URL",
    "TOPOLOGIES",
    "ManagedProcess",
    "StartError",
    "System",
    "SystemConfig",
]

DEFAULT_ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
HOST = "127.0.0.1"
#: ``single``: one Redis (``ONECITY_BENCH_REDIS_URL``); ``cluster``: a 3-master Redis Cluster
#: started for the run.
TOPOLOGIES = ("single", "cluster")

#: High enough that no limit refuses a benchmark request: the run measures work, not refusals.
_UNLIMITED = str(10**9)
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_COMMAND_TIMEOUT_S = 120.0
#: PgBouncer's server connections for the run's database: what a city gives one API host.
_PGBOUNCER_POOL = 20


class StartError(RuntimeError):
    """Part of the system did not start (the message carries the end of its log)."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ManagedProcess:
    """A child process in its own process group, with its output in a log file.

    Its own group (a new session) lets :meth:`stop` reach the workers a server forks
    (granian's) by the leader's id alone, and keeps a Ctrl-C in the terminal from hitting the
    children before the harness has stopped them in order.
    """

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log_file: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            list(command),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def failure(self, what: str) -> StartError:
        """An error about this process, with the end of its log."""
        return StartError(f"{self.name}: {what}\n--- {self.log} ---\n{_tail(self.log)}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process group this process leads."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def wait(self, timeout_s: float) -> bool:
        """Wait until it exits; whether it did in time."""
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        """Release the log file (the process must have exited)."""
        self._log_file.close()


def stop_all(processes: Sequence[ManagedProcess], timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM every group at once (graceful), then SIGKILL what is left after ``timeout_s``."""
    for process in processes:
        if process.alive():
            process.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        if not process.wait(max(0.0, deadline - time.monotonic())):
            process.signal(signal.SIGKILL)
            process.wait(5)
        # Workers of a leader that exited early could outlive it in the group.
        process.signal(signal.SIGKILL)
        process.close()


def wait_for_port(process: ManagedProcess, port: int, timeout_s: float = 30.0) -> None:
    """Wait until ``port`` accepts connections.

    Raises:
        StartError: When the process exits first or the deadline passes.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.failure(f"exited with {process.process.returncode} while starting")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise process.failure(f"port {port} did not open within {timeout_s:.0f} s")


def wait_until_ready(process: ManagedProcess, base_url: str, timeout_s: float = _READY_TIMEOUT_S) -> None:
    """Wait until ``GET /health/ready`` answers 200 (PostgreSQL and Redis reachable).

    Raises:
        StartError: When the process exits first or the deadline passes.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(base_url=base_url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not process.alive():
                raise process.failure(f"exited with {process.process.returncode} while starting")
            try:
                response = http.get("/health/ready")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
    raise process.failure(f"not ready within {timeout_s:.0f} s (last: {last})")


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """Where the servers are and how the BFF runs.

    Attributes:
        admin_database_url: A PostgreSQL URL allowed to create and drop databases.
        redis_url: The Redis database the BFF and the preparation use.
        workers: granian worker processes.
        workdir: Logs and data files.
        extra_env: ``ONECITY_*`` settings added for this run (e.g. longer partner tokens for
            a soak), applied last.
        topology: One of :data:`TOPOLOGIES`; with ``cluster``, ``redis_url`` is not used.
        pgbouncer: Put a transaction-mode PgBouncer between the BFF and PostgreSQL.
    """

    admin_database_url: str
    redis_url: str
    workers: int
    workdir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    topology: str = "single"
    pgbouncer: bool = False


async def _create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        # FORCE: a worker killed mid-request can leave a session behind for a moment.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _server_version(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


class System:
    """PostgreSQL database, simulators and BFF for one benchmark run (a context manager).

    Args:
        config: Servers, workers, folder.
    """

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.database_name = "onecity_bench_" + secrets.token_hex(4)
        self.database_url = ""
        self.master_key = secrets.token_bytes(32)
        self.metrics_token = secrets.token_urlsafe(32)
        self.bff_port = free_port()
        self.department_ports = {name: free_port() for name in DEPARTMENTS}
        self.postgres_version = ""
        self.redis_version = ""
        self._processes: list[ManagedProcess] = []
        self._bff: ManagedProcess | None = None
        self._database_created = False
        self._cluster: LocalRedisCluster | None = None
        self._pgbouncer: ManagedProcess | None = None
        self._pgbouncer_folder: Path | None = None
        self._pgbouncer_url = ""

    # addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The BFF's base URL."""
        return f"http://{HOST}:{self.bff_port}"

    @property
    def department_urls(self) -> dict[str, str]:
        """Each simulator's base URL."""
        return {name: f"http://{HOST}:{port}" for name, port in self.department_ports.items()}

    @property
    def redis_url(self) -> str:
        """The Redis the BFF uses: the run's cluster's seed node, or the configured database."""
        return self._cluster.seed_url if self._cluster is not None else self.config.redis_url

    def context(self, *, duration_s: int, connections: int) -> BenchContext:
        """What scenario preparation needs."""
        return BenchContext(
            base_url=self.base_url,
            database_url=self.database_url,
            redis_url=self.redis_url,
            master_key=self.master_key,
            departments=self.department_urls,
            workdir=self.config.workdir,
            duration_s=duration_s,
            connections=connections,
            environment=self.environment(),
        )

    def environment(self, *, port: int | None = None) -> dict[str, str]:
        """The environment of every ``onecity`` process of the run.

        The caller's own ``ONECITY_*`` variables are dropped, so a developer's settings (say,
        their dev database) can never leak into the benchmark.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONECITY_")}
        env.update(
            {
                "ONECITY_ENV": "prod",
                "ONECITY_DATABASE_URL": self.database_url,
                "ONECITY_REDIS_URL": self.redis_url,
                "ONECITY_MASTER_KEY": base64.urlsafe_b64encode(self.master_key).decode(),
                "ONECITY_PUBLIC_URL": f"http://{HOST}:{port or self.bff_port}",
                # One JSON line per request at INFO would make the server measure its logging.
                "ONECITY_LOG_LEVEL": "WARNING",
                # prod requires one; the scenarios scrape /metrics with it.
                "ONECITY_METRICS_TOKEN": self.metrics_token,
                "ONECITY_AUTH_RATE_PER_MINUTE": _UNLIMITED,
                "ONECITY_OTP_SENDS_PER_IP_PER_HOUR": _UNLIMITED,
                # Per account and type, per partner: a run loads a few hundred citizens and one
                # partner far harder than any real one would be.
                "ONECITY_CODES_ISSUE_PER_MINUTE": _UNLIMITED,
                "ONECITY_CODES_VERIFY_PER_SECOND": _UNLIMITED,
            }
        )
        if self._cluster is not None:
            env["ONECITY_REDIS_CLUSTER"] = "true"
        if self._pgbouncer_url:
            env["ONECITY_DATABASE_URL"] = self._pgbouncer_url
            env["ONECITY_MIGRATE_DATABASE_URL"] = self.database_url
            env["ONECITY_DB_STATEMENT_CACHE_SIZE"] = "0"
            # The hall's jobs run in the worker process on the direct URL (see start()).
            env["ONECITY_HALL_WORKER"] = "false"
        env.update(self.config.extra_env)
        by_path = {path: name for name, path in ENVIRONMENT.items()}
        for department, url in self.department_urls.items():
            env[by_path[f"departments.{department}"]] = url
        return env

    @property
    def bff_pid(self) -> int | None:
        """The BFF's main process (the leader of its process group), once started."""
        return self._bff.process.pid if self._bff is not None else None

    def process_groups(self) -> dict[str, set[int]]:
        """Process-group ids of the BFF and of the simulators (for CPU accounting)."""
        groups: dict[str, set[int]] = {"bff": set(), "simulators": set()}
        for process in self._processes:
            if process.name in ("bff", "hall worker"):
                groups["bff"].add(process.process.pid)
            elif process.name.startswith("simulator "):
                groups["simulators"].add(process.process.pid)
        return groups

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the database, migrate, make keys, start the simulators and the BFF.

        Raises:
            StartError: When any part does not start; what did start is left for :meth:`stop`.
        """
        if self.config.topology not in TOPOLOGIES:
            raise StartError(f"unknown topology {self.config.topology!r}; choose from {', '.join(TOPOLOGIES)}")
        if self.config.topology == "cluster":
            self._start_cluster()
        self.database_url = asyncio.run(_create_database(self.config.admin_database_url, self.database_name))
        self._database_created = True
        self.postgres_version = asyncio.run(_server_version(self.database_url))
        self.redis_version = self._redis_version()
        if self.config.pgbouncer:
            self._start_pgbouncer()
        for args in (["migrate"], ["keys", "ensure"]):
            self._run_command(args)
        jwks_url = f"{self.base_url}/.well-known/jwks.json"
        simulators = []
        for name, port in self.department_ports.items():
            command = [*self.onecity(), "simulate", name, "--host", HOST, "--port", str(port), "--jwks-url", jwks_url]
            simulators.append(self.spawn(f"simulator {name}", command, self.environment()))
        bff_command = [*self.onecity(), "serve", "--workers", str(self.config.workers)]
        bff_command += ["--host", HOST, "--port", str(self.bff_port)]
        self._bff = self.spawn("bff", bff_command, self.environment())
        worker = None
        if self._pgbouncer_url:
            worker_port = free_port()
            worker_env = self.environment() | {"ONECITY_DATABASE_URL": self.database_url, "ONECITY_HALL_WORKER": "true"}
            worker_env.pop("ONECITY_DB_STATEMENT_CACHE_SIZE")
            worker_command = [*self.onecity(), "serve", "--workers", "1", "--host", HOST, "--port", str(worker_port)]
            worker = (self.spawn("hall worker", worker_command, worker_env), f"http://{HOST}:{worker_port}")
        for process, port in zip(simulators, self.department_ports.values(), strict=True):
            wait_for_port(process, port)
        wait_until_ready(self._bff, self.base_url)
        if worker is not None:
            wait_until_ready(*worker)

    def stop(self) -> None:
        """Stop every process, remove the run's Redis keys, drop the database (best effort)."""
        stop_all(self._processes)
        self._processes.clear()
        if self._pgbouncer is not None:
            # SIGINT: immediate shutdown (SIGTERM would wait for clients to leave).
            self._pgbouncer.signal(signal.SIGINT)
            if not self._pgbouncer.wait(5):
                self._pgbouncer.signal(signal.SIGKILL)
                self._pgbouncer.wait(5)
            self._pgbouncer.close()
            self._pgbouncer = None
        if self._pgbouncer_folder is not None:
            shutil.rmtree(self._pgbouncer_folder, ignore_errors=True)
            self._pgbouncer_folder = None
        if self._cluster is not None:
            # The run's own cluster: nothing in it outlives the run.
            self._cluster.stop()
            self._cluster = None
        else:
            with contextlib.suppress(redis.RedisError):
                self._clear_redis()
        if self._database_created:
            asyncio.run(_drop_database(self.config.admin_database_url, self.database_name))
            self._database_created = False

    def __enter__(self) -> System:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # helpers -----------------------------------------------------------------------------

    @staticmethod
    def onecity() -> list[str]:
        """The ``onecity`` command, run by this interpreter (the venv's)."""
        return [sys.executable, "-m", "bff.cli"]

    def spawn(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> ManagedProcess:
        """Start a process that :meth:`stop` will end."""
        log = self.config.workdir / (name.replace(" ", "-") + ".log")
        process = ManagedProcess(name, command, env, log)
        self._processes.append(process)
        return process

    def stop_process(self, process: ManagedProcess) -> None:
        """Stop one process started with :meth:`spawn` before the run ends."""
        stop_all([process])
        self._processes.remove(process)

    def _run_command(self, args: list[str]) -> None:
        done = subprocess.run(
            [*self.onecity(), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise StartError(f"onecity {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")

    def _start_cluster(self) -> None:
        """Start the run's Redis Cluster (its nodes' folders and logs go to the workdir)."""
        missing = cluster_binaries_missing()
        if missing:
            raise StartError(
                f"--topology cluster needs {' and '.join(missing)} on the PATH (apt-get install redis-server)"
            )
        # Set before starting: a node that started before a failure is stopped by stop().
        self._cluster = LocalRedisCluster(self.config.workdir / "redis-cluster", free_cluster_ports(6))
        try:
            self._cluster.start()
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            raise StartError(f"the Redis Cluster did not start: {exc}") from exc

    def _start_pgbouncer(self) -> None:
        """Start the run's PgBouncer in front of its database and wait until it listens."""
        binary = pgbouncer_binary()
        if binary is None:
            raise StartError("--pgbouncer needs pgbouncer on the PATH (apt-get install pgbouncer)")
        # Not under the workdir: as root PgBouncer drops to another account, which must reach
        # its folder (the workdir is private to this user).
        folder = Path(tempfile.mkdtemp(prefix="onecity-bench-pgbouncer-"))
        self._pgbouncer_folder = folder
        port = free_port()
        config = write_pgbouncer_config(
            folder, port=port, server_url=self.config.admin_database_url, pool_size=_PGBOUNCER_POOL
        )
        log = self.config.workdir / "pgbouncer.log"
        self._pgbouncer = ManagedProcess("pgbouncer", [binary, str(config)], os.environ, log)
        try:
            wait_for_port(self._pgbouncer, port)
        except StartError as exc:
            raise StartError(f"{exc}\n--- {folder / 'pgbouncer.log'} ---\n{_tail(folder / 'pgbouncer.log')}") from exc
        user = urlsplit(self.config.admin_database_url).username or "postgres"
        self._pgbouncer_url = f"postgresql://{user}@{HOST}:{port}/{self.database_name}"

    @property
    def topology(self) -> str:
        """What the run measures, in words for the report's header."""
        redis_part = "single Redis"
        if self.config.topology == "cluster":
            redis_part = "Redis Cluster (3 masters + 3 replicas, ONECITY_REDIS_CLUSTER=true)"
        if self.config.pgbouncer:
            return (
                f"{redis_part}; PostgreSQL through PgBouncer (transaction mode, {_PGBOUNCER_POOL} server "
                "connections, ONECITY_DB_STATEMENT_CACHE_SIZE=0), the hall's jobs in a worker process of "
                "their own on the direct URL"
            )
        return redis_part

    def _redis_version(self) -> str:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()

    def _clear_redis(self) -> None:
        """Delete the app's keys (``oc:*``) from the bench database.

        Limits, OTP state and revocations all live under ``oc:``; OTP keys are per run anyway
        (blind indexes depend on the run's master key), so this only keeps the database small.
        """
        client = redis.Redis.from_url(self.config.redis_url, socket_timeout=5)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match="oc:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        finally:
            client.close()
