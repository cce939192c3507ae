"""OneCity server processes for tests that need more than one (or a real server)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping

import httpx

__all__ = ["ServerProcess", "free_port", "server_process"]


class ServerProcess(str):
    """The base URL of a running server (a ``str``), with its process attached."""

    process: subprocess.Popen[bytes]

    def __new__(cls, url: str, process: subprocess.Popen[bytes]) -> ServerProcess:
        instance = super().__new__(cls, url)
        instance.process = process
        return instance


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def server_process(
    *,
    database_url: str,
    redis_url: str,
    master_key: bytes,
    departments: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    workers: int = 1,
    port: int | None = None,
) -> AsyncIterator[ServerProcess]:
    """Run ``onecity serve`` (granian) in its own process; yield a handle with its URL.

    ``port``: listen there (e.g. to make ``ONECITY_PUBLIC_URL`` the real address); default a free one.
    """
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECITY_")}
    env.update(
        {
            "ONECITY_ENV": "test",
            "ONECITY_DATABASE_URL": database_url,
            "ONECITY_REDIS_URL": redis_url,
            "ONECITY_MASTER_KEY": base64.urlsafe_b64encode(master_key).decode(),
            "ONECITY_PUBLIC_URL": "http://127.0.0.1:8000",
            "ONECITY_LOG_LEVEL": "WARNING",
            "ONECITY_PEAK_LOOP_LAG_MS": "60000",  # see tests/conftest.py: no lag shedding in tests
            **{f"ONECITY_{name.upper()}_URL": url for name, url in departments.items()},
            **dict(extra_env or {}),
        }
    )
    # Popen returns at once (it does not wait for the child), so it does not block the loop.
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "bff.cli", "serve", "--workers", str(workers), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                assert process.poll() is None, (process.stderr.read() if process.stderr else b"").decode()[-2000:]
                try:
                    if (await client.get(f"{base}/health/ready", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not become ready")
        yield ServerProcess(base, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
