"""``onecity dev``: the whole system on one machine with nothing but Python installed.

Starts (or reuses) the embedded PostgreSQL and Redis under the data folder unless
``ONECITY_DATABASE_URL`` / ``ONECITY_REDIS_URL`` point at real servers, migrates, creates
keys, seeds the demo data, starts every department simulator in its own process, and
serves the BFF until Ctrl-C, then stops everything it started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import msgspec
import uvicorn

from bff.app import create_app
from bff.embedded import MASTER_KEY_FILE, RunningDefault, clear_running, record_running, start_embedded
from bff.seed import seed_demo
from bff.settings import Secret, Settings, data_path
from bff.storage import prepare
from core.crypto import parse_master_key

__all__ = ["dev_master_key", "run_dev", "uvicorn_config"]

DEMO_PHONES = ("13800000001", "13800000002", "13800000003")


def dev_master_key(settings: Settings, folder: Path) -> Secret:
    """The configured master key, else the data folder's own (created once, mode 0600)."""
    if settings.master_key is not None:
        return settings.master_key
    path = folder / MASTER_KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return Secret(parse_master_key(path.read_text().strip()))


async def _ensure_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the embedded server if needed; return its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(server_url)
    return parts._replace(path=f"/{name}").geturl()


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"department URL needs an explicit port: {url}")
    return port


def _wait_for_port(port: int, timeout_s: float = 60.0) -> bool:
    # Generous: nine simulator processes import Litestar at once, which on a small, busy
    # machine takes well over the few seconds it takes on an idle one.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def _start_simulators(settings: Settings) -> list[subprocess.Popen[bytes]]:
    jwks_url = f"http://127.0.0.1:{settings.server.port}/.well-known/jwks.json"
    processes = []
    for name, url in msgspec.structs.asdict(settings.departments).items():
        command = [sys.executable, "-m", "bff.cli", "simulate", name, "--port", str(_port_of(url))]
        command += ["--jwks-url", jwks_url]
        processes.append(subprocess.Popen(command))  # noqa: S603 - our own interpreter and module
    return processes


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def _summary(settings: Settings, folder: Path, embedded_db: bool, embedded_redis: bool) -> str:
    base = f"http://{settings.server.host}:{settings.server.port}"
    lines = [
        "",
        "OneCity is running (Ctrl-C stops everything).",
        f"  BFF            {base}   API docs {base}/schema   ready {base}/health/ready",
        f"  PostgreSQL     {'embedded in ' + str(folder / 'postgres') if embedded_db else 'ONECITY_DATABASE_URL'}",
        f"  Redis          {'embedded in ' + str(folder / 'redis') if embedded_redis else 'ONECITY_REDIS_URL'}",
        "  Departments    "
        + ", ".join(f"{n} :{_port_of(u)}" for n, u in msgspec.structs.asdict(settings.departments).items()),
        f"  Demo citizens  {', '.join(DEMO_PHONES)} (the OTP arrives in the SMS simulator's outbox)",
        "  Demo partner   client_id demo-partner, secret demo-partner-secret",
        "  Departments'   event clients dept-<name> / dept-<name>-secret (health, socsec, hukou, education)",
        "",
    ]
    return "\n".join(lines)


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """How ``onecity dev`` serves the app (uvicorn, one process)."""
    return uvicorn.Config(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For sent by
        # any loopback client; OneCity reads it itself, from ONECITY_TRUSTED_PROXIES only
        # (identity.dependencies.client_ip).
        proxy_headers=False,
        server_header=False,
    )


def run_dev(settings: Settings, *, simulators: bool = True) -> int:
    """Run the whole system until interrupted; return the exit code."""
    folder = data_path(settings)
    folder.mkdir(parents=True, exist_ok=True)
    settings = msgspec.structs.replace(settings, master_key=dev_master_key(settings, folder))
    embedded_db, embedded_redis = settings.database.url is None, settings.redis.url is None
    servers = start_embedded(folder, postgres=embedded_db, redis=embedded_redis)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        database = settings.database
        if servers.database_url:
            url = asyncio.run(_ensure_database(servers.database_url, "onecity"))
            database = msgspec.structs.replace(database, url=url)
        redis = settings.redis
        if servers.redis_url:
            redis = msgspec.structs.replace(redis, url=servers.redis_url)
        settings = msgspec.structs.replace(settings, database=database, redis=redis)
        asyncio.run(prepare(settings))
        # Other `onecity` commands find the embedded servers here while this process runs.
        embedded = RunningDefault(
            pid=os.getpid(),
            database_url=database.url if embedded_db else None,
            redis_url=redis.url if embedded_redis else None,
        )
        record_running(folder, embedded)
        asyncio.run(seed_demo(settings))
        if simulators:
            processes = _start_simulators(settings)
            for url in msgspec.structs.asdict(settings.departments).values():
                if not _wait_for_port(_port_of(url)):
                    print(f"department simulator at {url} did not start", file=sys.stderr)
                    return 1
        print(_summary(settings, folder, embedded_db, embedded_redis), flush=True)
        config = uvicorn_config(settings)
        # uvicorn re-raises the Ctrl-C it handled once the server has shut down; the shutdown
        # was clean, so that is a normal exit.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()
        return 0
    finally:
        clear_running(folder, os.getpid())
        _stop(processes)
        servers.stop()
