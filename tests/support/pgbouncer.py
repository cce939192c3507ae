"""A real PgBouncer (the Debian binary) in transaction mode, in a temp dir, on a free port.

It points at the test PostgreSQL (host and port from its URL) for every database name and
authenticates as the test does (``trust``: the test server accepts ``postgres`` without a
password). ``restart()`` stops it and starts it again on the same port, for drills.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.processes import free_port

__all__ = ["PgBouncer", "pgbouncer", "pgbouncer_binary"]


def pgbouncer_binary() -> str | None:
    """The ``pgbouncer`` executable, or ``None`` (``apt-get install -y pgbouncer``)."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )


class PgBouncer:
    """One PgBouncer process; ``url(database)`` is how a client reaches a database through it."""

    def __init__(
        self, binary: str, folder: Path, server_url: str, *, pool_size: int = 10, query_wait_timeout_s: int = 5
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        parts = urlsplit(server_url)
        self.user = parts.username or "postgres"
        self._server_host = parts.hostname or "127.0.0.1"
        self._server_port = parts.port or 5432
        self._pool_size = pool_size
        self._query_wait_timeout_s = query_wait_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """A libpq URL of ``database`` through this PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        (self.folder / "users.txt").write_text(f'"{self.user}" ""\n')
        config = self.folder / "pgbouncer.ini"
        # PgBouncer refuses to run as root; as root it drops to `user` (needs the folder).
        as_user = ""
        if os.geteuid() == 0:
            account = "postgres" if _has_user("postgres") else "nobody"
            as_user = f"user = {account}\n"
            shutil.chown(self.folder, user=account)
            for path in self.folder.iterdir():
                shutil.chown(path, user=account)
        config.write_text(
            "[databases]\n"
            f"* = host={self._server_host} port={self._server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self._pool_size}\n"
            "max_client_conn = 500\n"
            f"query_wait_timeout = {self._query_wait_timeout_s}\n"
            "server_connect_timeout = 2\n"
            "server_login_retry = 1\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\n"
            f"pidfile = {self.folder / 'pgbouncer.pid'}\n"
            "admin_users = \n" + as_user
        )
        if os.geteuid() == 0:
            shutil.chown(config, user=as_user.split("=")[1].strip())
        return config

    async def start(self) -> None:
        """Start it and wait until it accepts connections."""
        config = self._write_config()
        self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [self.binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(100):
            assert self.process.poll() is None, self.log()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise AssertionError("pgbouncer did not start: " + self.log())

    async def stop(self) -> None:
        """Stop it at once (SIGINT: "immediate shutdown"), closing every connection."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    async def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port."""
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()

    def log(self) -> str:
        """The end of its log file (for assertion messages)."""
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.asynccontextmanager
async def pgbouncer(server_url: str, *, pool_size: int = 10, query_wait_timeout_s: int = 5) -> AsyncIterator[PgBouncer]:
    """Run a transaction-mode PgBouncer in front of ``server_url``'s server until the block ends."""
    binary = pgbouncer_binary()
    assert binary, "pgbouncer is not installed (apt-get install -y pgbouncer)"
    with tempfile.TemporaryDirectory(prefix="onecity-pgbouncer-") as folder:
        bouncer = PgBouncer(
            binary, Path(folder), server_url, pool_size=pool_size, query_wait_timeout_s=query_wait_timeout_s
        )
        await bouncer.start()
        try:
            yield bouncer
        finally:
            await bouncer.stop()
