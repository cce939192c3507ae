"""A real HAProxy (the Debian binary): round-robin over backends, ``option forwardfor``.

It listens on 127.0.0.1 on a free port, in HTTP mode, and appends the address it saw to
``X-Forwarded-For`` (as a production balancer does), so the servers behind it can tell
clients apart when it is one of their ``ONECITY_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.processes import free_port

__all__ = ["haproxy", "haproxy_binary"]


def haproxy_binary() -> str | None:
    """The ``haproxy`` executable, or ``None`` (``apt-get install -y haproxy``)."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.path.exists(p)), None
    )


@contextlib.asynccontextmanager
async def haproxy(backends: Sequence[str]) -> AsyncIterator[str]:
    """Run HAProxy round-robin over ``backends`` (base URLs); yield its base URL."""
    binary = haproxy_binary()
    assert binary, "haproxy is not installed (apt-get install -y haproxy)"
    port = free_port()
    servers = "".join(
        f"    server s{i} {urlsplit(url).hostname}:{urlsplit(url).port}\n" for i, url in enumerate(backends)
    )
    with tempfile.TemporaryDirectory(prefix="onecity-haproxy-") as folder:
        config = Path(folder) / "haproxy.cfg"
        config.write_text(
            "global\n"
            "    maxconn 2000\n"
            "defaults\n"
            "    mode http\n"
            "    timeout connect 2s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            "    option forwardfor\n"
            "    option http-server-close\n"
            "frontend web\n"
            f"    bind 127.0.0.1:{port}\n"
            "    default_backend bff\n"
            "backend bff\n"
            "    balance roundrobin\n" + servers
        )
        # -db: stay in the foreground (no daemon), so the test owns the process.
        process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            for _ in range(100):
                assert process.poll() is None, (process.stderr.read() if process.stderr else b"").decode()[-2000:]
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break
            else:
                raise AssertionError("haproxy did not start")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
