"""``python -m bench.profile``: where one endpoint's CPU goes, with cProfile, in one process.

The BFF runs in this process on a fresh database (migrated, keys made, as ``python -m bench``
does) and requests are handed to it as ASGI calls, with no server and no sockets in between:
what the profile shows is the app's own work per request (routing, form parsing, dependency
injection, the grant, signing, JSON) plus the PostgreSQL and Redis round trips it awaits.
``--concurrency`` requests are in flight at once, as under wrk. The totals are per request.

Usage::

    python -m bench.profile client_credentials --requests 4000
    python -m bench.profile refresh --requests 4000 --sort cumulative --limit 40

Scenarios: ``trivial``, ``client_credentials``, ``refresh`` (no department simulators needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bench.context import BenchContext
from bench.fixtures import basic_auth, create_sessions, ensure_demo_partner
from bench.system import (
    DEFAULT_ADMIN_DATABASE_URL,
    DEFAULT_REDIS_URL,
    System,
    SystemConfig,
    _create_database,
    _drop_database,
)

__all__ = ["main"]

Message = dict[str, Any]
_Request = tuple[str, str, list[tuple[bytes, bytes]], bytes]


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, to_app.get, from_app.put)
    )
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        # A shutdown that hangs must not keep the profile from being printed and the run's
        # database from being dropped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(from_app.get(), timeout=15)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _call(app: Any, request: _Request) -> tuple[int, bytes]:
    """One HTTP request as an ASGI call; the status and body."""
    method, path, headers, body = request
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect would never come before the answer
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _requests(scenario: str, ctx: BenchContext, count: int) -> Callable[[int], _Request]:
    form = [(b"content-type", b"application/x-www-form-urlencoded")]
    if scenario == "trivial":
        return lambda i: ("GET", "/health/live", [], b"")
    if scenario == "client_credentials":
        client_id, secret = await ensure_demo_partner(ctx)
        auth = [(b"authorization", basic_auth(client_id, secret).encode())]
        return lambda i: ("POST", "/oauth/token", form + auth, b"grant_type=client_credentials")
    if scenario == "refresh":
        tokens = await create_sessions(ctx, count, phone_prefix="17")
        json_type = [(b"content-type", b"application/json")]
        return lambda i: ("POST", "/v1/auth/refresh", json_type, b'{"refresh_token":"%s"}' % tokens[i].encode())
    raise ValueError(f"no profile for {scenario}")


async def _load(app: Any, make: Callable[[int], _Request], count: int, concurrency: int, first: int = 0) -> None:
    queue = iter(range(first, first + count))

    async def worker() -> None:
        for i in queue:
            status, body = await _call(app, make(i))
            if status != 200:
                raise RuntimeError(f"request {i} answered {status}: {body[:300]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _profile(options: argparse.Namespace, system: System) -> str:
    from bff.app import create_app
    from bff.settings import load_settings

    env = system.environment()
    os.environ.update(env)
    ctx = system.context(duration_s=60, connections=options.concurrency)
    warm = max(200, options.requests // 10)
    make = await _requests(options.scenario, ctx, warm + options.requests)
    app = create_app(load_settings(env))
    async with _lifespan(app):
        await _load(app, make, warm, options.concurrency)  # pools opened, caches filled
        profiler = cProfile.Profile()
        started_cpu, started = time.process_time(), time.perf_counter()
        profiler.enable()
        await _load(app, make, options.requests, options.concurrency, first=warm)
        profiler.disable()
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats(options.sort).print_stats(options.limit)
    if options.callers:
        stats.print_callers(options.callers)
    head = (
        f"{options.scenario}: {options.requests} requests, {options.concurrency} at a time; "
        f"{1000 * cpu / options.requests:.3f} ms CPU/request under cProfile (its overhead included), "
        f"{options.requests / wall:,.0f} req/s in one process\n"
    )
    return head + out.getvalue()


_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWN_METRICS_ENV = "BENCH_PROFILE_METRICS_DIR"


def main(argv: list[str] | None = None) -> int:
    """Profile one scenario; print the top functions."""
    if not os.environ.get(_METRICS_ENV):
        # As under `onecity serve`: metrics written to shared files (what they cost there).
        # prometheus_client picks its storage when first imported, so start again with it set.
        os.environ[_METRICS_ENV] = os.environ[_OWN_METRICS_ENV] = tempfile.mkdtemp(prefix="onecity-profile-")
        args = sys.argv[1:] if argv is None else argv
        os.execv(sys.executable, [sys.executable, "-m", "bench.profile", *args])  # noqa: S606
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["trivial", "client_credentials", "refresh"])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative, ...)")
    parser.add_argument("--limit", type=int, default=30, help="functions printed")
    parser.add_argument("--callers", default="", help="also print the callers of functions matching this")
    options = parser.parse_args(argv)
    admin_url = os.environ.get("ONECITY_BENCH_DATABASE_URL", DEFAULT_ADMIN_DATABASE_URL)
    redis_url = os.environ.get("ONECITY_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    workdir = Path(tempfile.mkdtemp(prefix="onecity-profile-"))
    system = System(SystemConfig(admin_url, redis_url, 1, workdir))
    try:
        system.database_url = asyncio.run(_create_database(admin_url, system.database_name))
        for args in (["migrate"], ["keys", "ensure"]):
            system._run_command(args)
        with contextlib.suppress(ImportError):
            import uvloop  # granian's loop in production

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        print(asyncio.run(_profile(options, system)), flush=True)
    finally:
        with contextlib.suppress(Exception):
            system._clear_redis()
        asyncio.run(_drop_database(admin_url, system.database_name))
        shutil.rmtree(workdir, ignore_errors=True)
        if os.environ.get(_OWN_METRICS_ENV):
            shutil.rmtree(os.environ[_OWN_METRICS_ENV], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
