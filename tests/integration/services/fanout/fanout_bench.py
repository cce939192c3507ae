"""Measure the home-screen fan-out through the department HTTP client (not a test).

Starts the health, transport and social-security simulators in three processes of their own (so
the client's event loop measures only the client), then runs home-screen fan-outs (4 department
calls: tests, risk, transport card, socsec card) for distinct citizens (no coalescing, no cache)
at several concurrencies, once per client configuration, and prints screens/s, latency and the
client's CPU per department call. Results are recorded in ``docs/fanout.md``.

Usage: ``.venv/bin/python -m tests.integration.services.fanout.fanout_bench [--screens N]``
(the lead owns ``bench/``; move it there if it belongs with the other load scripts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer
from services import DepartmentEndpoints, Departments, ServiceTokenMinter, build_departments
from services.idnumber import check_digit

_SERVER = """
import asyncio, json, os, sys
from services.simulators import start_simulators
from services.tokens import StaticJwks

async def main():
    jwks = StaticJwks(json.loads(os.environ["BENCH_JWKS"]))
    await start_simulators(jwks, ports={sys.argv[1]: int(sys.argv[2])}, names=(sys.argv[1],))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _client(max_connections: int, keepalive: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(5.0, connect=1.0),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=keepalive, keepalive_expiry=30.0
        ),
    )


Built = tuple[list[httpx.AsyncClient], Departments]
Setup = Callable[[DepartmentEndpoints, ServiceTokenMinter], Built]


def _shared(make: Callable[[], httpx.AsyncClient]) -> Setup:
    """One client for every department (how bff.resources did it)."""

    def setup(
        endpoints: DepartmentEndpoints, minter: ServiceTokenMinter
    ) -> tuple[list[httpx.AsyncClient], Departments]:
        http = make()
        return [http], build_departments(endpoints, http, minter)

    return setup


def _per_department(make: Callable[[], httpx.AsyncClient]) -> Setup:
    """A client (so a connection pool) per department."""

    def setup(
        endpoints: DepartmentEndpoints, minter: ServiceTokenMinter
    ) -> tuple[list[httpx.AsyncClient], Departments]:
        clients = {name: make() for name in ("health", "transport", "socsec")}
        built = {name: build_departments(endpoints, http, minter) for name, http in clients.items()}
        departments = dataclasses.replace(
            built["health"], transport=built["transport"].transport, socsec=built["socsec"].socsec
        )
        return list(clients.values()), departments

    return setup


SETUPS: dict[str, Setup] = {
    "shared, httpx defaults (100/20)": _shared(lambda: httpx.AsyncClient(timeout=5.0)),
    "shared, 200/100 (before)": _shared(lambda: _client(200, 100)),
    "shared, 1000/1000": _shared(lambda: _client(1000, 1000)),
    "per department, 100/20 (after)": _per_department(lambda: _client(100, 20)),
    "per department, 32/32": _per_department(lambda: _client(32, 32)),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _citizen(i: int) -> str:
    first17 = f"110101{1950 + i % 50}0101{i % 1000:03d}"
    return first17 + check_digit(first17)


async def _screen(departments: Departments, id_number: str) -> int:
    """One home-screen fan-out; returns how many of its 4 calls failed."""
    results = await asyncio.gather(
        departments.health.tests(id_number, purpose="bench"),
        departments.health.risk(id_number, purpose="bench"),
        departments.transport.card(id_number, purpose="bench"),
        departments.socsec.card(id_number, purpose="bench"),
        return_exceptions=True,
    )
    return sum(isinstance(r, BaseException) for r in results)


async def _run(
    setup: Setup,
    endpoints: DepartmentEndpoints,
    minter: ServiceTokenMinter,
    *,
    screens: int,
    concurrency: int,
) -> dict[str, float]:
    clients, departments = setup(endpoints, minter)
    async with contextlib.AsyncExitStack() as stack:
        for http in clients:
            await stack.enter_async_context(http)
        await asyncio.gather(*(_screen(departments, _citizen(i)) for i in range(min(concurrency, 100))))  # warm up
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        errors = 0

        async def one(i: int) -> None:
            nonlocal errors
            async with gate:
                started = time.perf_counter()
                errors += await _screen(departments, _citizen(i))
                latencies.append(time.perf_counter() - started)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(screens)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    return {
        "screens_per_s": screens / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "client_cpu_us_per_call": cpu / (screens * 4) * 1e6,
        "errors": errors,
    }


def _mint_cost(minter: ServiceTokenMinter, n: int = 2000) -> float:
    started = time.process_time()
    for _ in range(n):
        minter.mint(audience="health", subject="110101199003070011", scope="health:tests", purpose="bench")
    return (time.process_time() - started) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--screens", type=int, default=1000)
    parser.add_argument("--concurrency", default="10,50,200")
    args = parser.parse_args()
    signer = Ed25519Signer("svc-bench-1", Ed25519PrivateKey.generate())
    minter = ServiceTokenMinter(lambda: signer)
    env = {**os.environ, "BENCH_JWKS": json.dumps({"keys": [signer.jwk()]})}
    ports = {name: _free_port() for name in ("health", "transport", "socsec")}
    servers = [
        subprocess.Popen(  # noqa: ASYNC220 - the loop has nothing else to do yet
            [sys.executable, "-c", _SERVER, name, str(port)], env=env, stdout=subprocess.PIPE, text=True
        )
        for name, port in ports.items()
    ]
    try:
        for server in servers:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
        endpoints = DepartmentEndpoints(**{name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
        print(f"service token minting: {_mint_cost(minter):.0f} us CPU per call")
        print(f"{'client':<34}{'conc.':>6}{'screens/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'cpu us/call':>13}{'errors':>8}")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for name, setup in SETUPS.items():
                r = await _run(setup, endpoints, minter, screens=args.screens, concurrency=concurrency)
                print(
                    f"{name:<34}{concurrency:>6}{r['screens_per_s']:>11.0f}{r['p50_ms']:>9.1f}"
                    f"{r['p99_ms']:>9.1f}{r['client_cpu_us_per_call']:>13.0f}{r['errors']:>8.0f}",
                    flush=True,
                )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
