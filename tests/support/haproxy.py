"""A real HAProxy (the Debian binary): round-robin over backends, ``option forwardfor``.

It listens on 127.0.0.1 on a free port, in HTTP mode, and appends the address it saw to
``X-Forwarded-For`` (as a production balancer does), so the servers behind it can tell
clients apart when it is one of their ``ONECITY_TRUSTED_PROXIES``.

With ``server_maxconn`` it is the configuration docs/operations.md recommends ("Load
balancer"): each server takes at most that many requests at once, a request that waits longer
than ``timeout queue`` is refused with OneCity's own 503 ``overloaded`` problem, and with
``split_streams`` the live event streams go to a backend of their own without that cap.
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

import msgspec

from bff.peak import OVERLOADED_DETAIL, OVERLOADED_TITLE
from core.problem import problem_document
from tests.support.processes import free_port

__all__ = ["OVERLOADED_BODY", "haproxy", "haproxy_binary"]

#: What the balancer answers when a server's queue wait runs out: the BFF's own shed answer
#: (bff/peak.py) without the per-request members, so the app treats both alike (it keeps the
#: last code).
OVERLOADED_BODY = msgspec.json.encode(
    problem_document(status=503, slug="overloaded", title=OVERLOADED_TITLE, detail=OVERLOADED_DETAIL)
).decode()


def haproxy_binary() -> str | None:
    """The ``haproxy`` executable, or ``None`` (``apt-get install -y haproxy``)."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.path.exists(p)), None
    )


def _config(
    port: int, backends: Sequence[str], *, server_maxconn: int | None, queue_timeout_s: int, split_streams: bool
) -> str:
    def servers(cap: int | None) -> str:
        limit = f" maxconn {cap}" if cap else ""
        return "".join(
            f"    server s{i} {urlsplit(url).hostname}:{urlsplit(url).port}{limit}\n" for i, url in enumerate(backends)
        )

    frontend = f"frontend web\n    bind 127.0.0.1:{port}\n"
    if split_streams:
        frontend += "    use_backend streams if { path /v1/me/events }\n"
    frontend += "    default_backend bff\n"
    bff = "backend bff\n    balance roundrobin\n"
    if server_maxconn:
        bff += (
            f"    timeout queue {queue_timeout_s}s\n"
            "    http-error status 503 content-type application/problem+json"
            f" string '{OVERLOADED_BODY}' hdr retry-after 2 hdr cache-control no-store\n"
        )
    config = (
        "global\n"
        "    maxconn 2000\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 2s\n"
        "    timeout client 30s\n"
        "    timeout server 30s\n"
        "    option forwardfor\n"
        "    option http-server-close\n" + frontend + bff + servers(server_maxconn)
    )
    if split_streams:
        config += "backend streams\n    balance roundrobin\n" + servers(None)
    return config


@contextlib.asynccontextmanager
async def haproxy(
    backends: Sequence[str],
    *,
    server_maxconn: int | None = None,
    queue_timeout_s: int = 2,
    split_streams: bool = False,
) -> AsyncIterator[str]:
    """Run HAProxy round-robin over ``backends`` (base URLs); yield its base URL.

    Args:
        backends: The servers' base URLs.
        server_maxconn: Requests each server takes at once (``None``: no cap).
        queue_timeout_s: With a cap: how long a request may wait for a server before the 503.
        split_streams: ``GET /v1/me/events`` goes to a backend of its own, without the cap.
    """
    binary = haproxy_binary()
    assert binary, "haproxy is not installed (apt-get install -y haproxy)"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="onecity-haproxy-") as folder:
        config = Path(folder) / "haproxy.cfg"
        config.write_text(
            _config(
                port,
                backends,
                server_maxconn=server_maxconn,
                queue_timeout_s=queue_timeout_s,
                split_streams=split_streams,
            )
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
