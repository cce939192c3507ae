"""CPU per department call of the HTTP clients the BFF could use, all behind the httpx API.

Run: ``.venv/bin/python -m bench.http_client`` (about a minute; ``--calls``, ``--concurrency``).

A granian process (the server the BFF itself runs on) answers every request with a fixed
socsec-card JSON body, as a department would; it runs in a process of its own, so the CPU
measured here (``time.process_time`` of this process) is the client's alone: building the
request, the connection pool, parsing the answer and the event loop's share. Each client sends
the same headers as :class:`services.departments.base.DepartmentHttp` (a service token of the
real size) and decodes the body with msgspec, ``--concurrency`` calls at a time, like a burst
of home screens. The loop is uvloop, as under granian in production.

Clients (``httpx`` is the API in every row but the last):

- ``httpx h1``: httpx's own transport (httpcore), HTTP/1.1, the pool settings of
  :class:`services.fanout.pools.DepartmentPools` - what the BFF uses today;
- ``httpx h1, keep-alive=conc``: the same with only as many kept-alive connections as callers;
- ``httpx h2``: httpcore over HTTP/2 with prior knowledge (cleartext), one multiplexed connection;
- ``httpx + aiohttp``: ``httpx_aiohttp.AiohttpTransport`` (aiohttp's connection pool and
  parser under the httpx API);
- ``aiohttp (reference)``: aiohttp itself, as a floor for the transport above.

Results are in ``docs/benchmarks.md`` ("Department HTTP client").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from services.departments.socsec import SocsecCard

__all__ = ["app", "main"]

_BODY = msgspec.json.encode(
    {"card_no": "3301061990010100001", "status": "active", "issued_city": "杭州", "medical_balance_cents": 123456}
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
# A service token is an Ed25519 JWS of about 600 bytes.
_TOKEN = "eyJ" + "x" * 600


async def app(
    scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    """The department: a fixed card for every request (ASGI, for granian)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def _server(http: str) -> Any:
    port = _free_port()
    process = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "granian"),
            "--interface",
            "asgi",
            "--http",
            http,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-log",
            "bench.http_client:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1/me/card"
    finally:
        process.terminate()
        process.wait(10)


Call = Callable[[], Awaitable[SocsecCard]]


def _limits(keepalive: int = 20) -> httpx.Limits:
    return httpx.Limits(max_connections=100, max_keepalive_connections=keepalive, keepalive_expiry=30.0)


@contextlib.asynccontextmanager
async def _httpx(url: str, **options: Any) -> AsyncIterator[Call]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0), follow_redirects=False, **options) as http:

        async def call() -> SocsecCard:
            headers = {"Authorization": f"Bearer {_TOKEN}", "Accept": "application/json"}
            response = await http.request("GET", url, params=None, content=None, headers=headers)
            return msgspec.json.decode(response.content, type=SocsecCard)

        yield call


@contextlib.asynccontextmanager
async def _aiohttp(url: str) -> AsyncIterator[Call]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30.0)) as session:

        async def call() -> SocsecCard:
            headers = {"Authorization": f"Bearer {_TOKEN}", "Accept": "application/json"}
            async with session.get(url, headers=headers) as response:
                return msgspec.json.decode(await response.read(), type=SocsecCard)

        yield call


async def _run(call: Call, calls: int, concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    share, extra = divmod(calls, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))


async def _measure(
    client: contextlib.AbstractAsyncContextManager[Call], calls: int, concurrency: int
) -> tuple[float, float]:
    """(CPU µs per call, calls per second of wall time)."""
    async with client as call:
        await _run(call, min(calls, 500), concurrency)  # connections open, code paths warm
        cpu, wall = time.process_time(), time.perf_counter()
        await _run(call, calls, concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, calls / wall


async def _all(calls: int, concurrencies: list[int], rounds: int) -> list[tuple[str, int, float, float]]:
    rows: list[tuple[str, int, float, float]] = []
    with _server("1") as h1, _server("2") as h2:
        variants: list[tuple[str, Callable[[int], contextlib.AbstractAsyncContextManager[Call]]]] = [
            ("httpx h1 (today)", lambda c: _httpx(h1, limits=_limits())),
            ("httpx h1, keep-alive=conc", lambda c: _httpx(h1, limits=_limits(c))),
            ("httpx h2", lambda c: _httpx(h2, limits=_limits(), http1=False, http2=True)),
            (
                "httpx + aiohttp transport",
                lambda c: _httpx(h1, transport=AiohttpTransport(limits=_limits())),
            ),
            ("aiohttp (reference)", lambda c: _aiohttp(h1)),
        ]
        for concurrency in concurrencies:
            for name, make in variants:
                # Best of a few rounds: the machine is shared, the minimum is the client's cost.
                results = [await _measure(make(concurrency), calls, concurrency) for _ in range(rounds)]
                best = min(results, key=lambda r: r[0])
                rows.append((name, concurrency, *best))
                print(f"{name:28} c={concurrency:<3} {best[0]:7.0f} µs CPU/call {best[1]:8.0f} calls/s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Measure and print a table (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000, help="calls per measurement")
    parser.add_argument("--concurrency", default="4,16", help="comma-separated calls in flight")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell; the lowest CPU is kept")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    if args.loop == "uvloop":
        import uvloop

        rows = uvloop.run(_all(args.calls, concurrencies, args.rounds))
    else:
        rows = asyncio.run(_all(args.calls, concurrencies, args.rounds))
    print("\n| client | in flight | CPU µs / call | calls/s |\n|---|---|---|---|")
    for name, concurrency, cpu, rate in rows:
        print(f"| {name} | {concurrency} | {cpu:.0f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
