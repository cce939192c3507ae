"""Every simulator running in-process on a free loopback port, plus clients and token helpers.

The simulators start once per session (fast) and each test starts from a clean slate: no
faults, zeroed stats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer
from services import (
    DEPARTMENTS,
    DepartmentEndpoints,
    Departments,
    ServiceTokenMinter,
    StaticJwks,
    build_departments,
)
from services.simulators import RunningServer, start_simulators

ZHANG_SAN = "110101199003070011"
LI_SI = "110101198512120019"
WANG_WU = "110101197706150019"
DEMO_IDS = (ZHANG_SAN, LI_SI, WANG_WU)

TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def signer() -> Ed25519Signer:
    return Ed25519Signer("svc-test-1", Ed25519PrivateKey.generate())


@pytest.fixture(scope="session")
def minter(signer: Ed25519Signer) -> ServiceTokenMinter:
    return ServiceTokenMinter(lambda: signer)


@pytest.fixture(scope="session")
def make_token(signer: Ed25519Signer) -> TokenFactory:
    """Hand-made service tokens, so tests can also make bad ones."""

    def make(aud: str, sub: str = ZHANG_SAN, *, signer_: Ed25519Signer | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "onecity",
            "aud": aud,
            "sub": sub,
            "scope": f"{aud}:test",
            "purpose": "testing",
            "iat": now,
            "exp": now + 60,
            "jti": f"jti-{time.monotonic_ns()}",
        }
        claims.update(overrides)
        return (signer_ or signer).sign(claims, typ="svc+jwt")

    return make


@pytest.fixture(scope="session")
async def simulators(signer: Ed25519Signer) -> AsyncIterator[dict[str, RunningServer]]:
    jwks = StaticJwks({"keys": [signer.jwk()]})
    running = await start_simulators(jwks, ports=dict.fromkeys(DEPARTMENTS, 0))
    yield running
    await asyncio.gather(*(server.stop() for server in running.values()))


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture(scope="session")
def endpoints(simulators: dict[str, RunningServer]) -> DepartmentEndpoints:
    return DepartmentEndpoints(**{name: server.base_url for name, server in simulators.items()})


@pytest.fixture(scope="session")
def departments(endpoints: DepartmentEndpoints, http: httpx.AsyncClient, minter: ServiceTokenMinter) -> Departments:
    return build_departments(endpoints, http, minter)


@pytest.fixture(autouse=True)
async def clean_simulators(simulators: dict[str, RunningServer], http: httpx.AsyncClient) -> AsyncIterator[None]:
    async def reset() -> None:
        for server in simulators.values():
            (await http.delete(f"{server.base_url}/_sim/faults")).raise_for_status()
            (await http.delete(f"{server.base_url}/_sim/stats")).raise_for_status()

    await reset()
    yield
    await reset()  # also releases anything a test left hanging
