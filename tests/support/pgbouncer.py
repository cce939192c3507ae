"""A real PgBouncer (the Debian binary) in transaction mode, in a temp dir, on a free port.

It points at the test PostgreSQL (host and port from its URL) for every database name and
authenticates as the test does (``trust``: the test server accepts ``postgres`` without a
password). ``restart()`` stops it and starts it again on the same port, for drills. The
configuration is :func:`bff.local_pgbouncer.write_pgbouncer_config` (the benchmark's
``--pgbouncer`` writes the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from bff.local_pgbouncer import pgbouncer_binary, write_pgbouncer_config
from tests.support.processes import free_port

__all__ = ["PgBouncer", "pgbouncer", "pgbouncer_binary"]


class PgBouncer:
    """One PgBouncer process; ``url(database)`` is how a client reaches a database through it."""

    def __init__(
        self, binary: str, folder: Path, server_url: str, *, pool_size: int = 10, query_wait_timeout_s: int = 5
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.user = urlsplit(server_url).username or "postgres"
        self._server_url = server_url
        self._pool_size = pool_size
        self._query_wait_timeout_s = query_wait_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """A libpq URL of ``database`` through this PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        return write_pgbouncer_config(
            self.folder,
            port=self.port,
            server_url=self._server_url,
            pool_size=self._pool_size,
            query_wait_timeout_s=self._query_wait_timeout_s,
        )

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
