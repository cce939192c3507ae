"""``onecity serve``: the production server.

Granian runs one worker process per core (configurable). Each worker builds its own app
from the environment (:func:`bff.asgi.app_factory`), so workers share nothing but
PostgreSQL and Redis, exactly like several hosts behind a load balancer. On SIGTERM or
SIGINT granian stops accepting, lets in-flight requests finish (up to 30 s), then runs
each app's lifespan shutdown (pools and clients close).
"""

from __future__ import annotations

import os

from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.server import Server

from bff.metrics import remove_multiprocess_dir
from bff.resources import StartupError
from bff.settings import Settings

__all__ = ["serve"]


def serve(settings: Settings, *, workers: int | None = None, host: str | None = None, port: int | None = None) -> int:
    """Run granian until stopped; return the exit code."""
    if not settings.database.url or not settings.redis.url:
        raise StartupError("ONECITY_DATABASE_URL and ONECITY_REDIS_URL must be set for `onecity serve`")
    count = workers or settings.server.workers or os.cpu_count() or 1
    try:
        Server(
            "bff.asgi:app_factory",
            factory=True,
            interface=Interfaces.ASGI,
            address=host or settings.server.host,
            port=port or settings.server.port,
            workers=count,
            backlog=2048,
            log_access=False,
            workers_kill_timeout=30,
            respawn_failed_workers=True,
            # Granian leaves the ASGI client address alone (its proxy-header rewriting is an
            # opt-in wrapper, granian.utils.proxies, that OneCity does not use): the client
            # address is decided by the app from ONECITY_TRUSTED_PROXIES only.
            # Request header limits: a client gets 10 s to send its headers (slow-loris) and the
            # header buffer is capped; bodies are capped by the app (ONECITY_MAX_BODY_BYTES, 413).
            http1_settings=HTTP1Settings(
                header_read_timeout=10_000, max_buffer_size=settings.server.max_header_bytes, keep_alive=True
            ),
        ).serve()
    finally:
        # The per-run metrics directory (made by the CLI before the workers started).
        remove_multiprocess_dir()
    return 0
