"""`onecity serve` in its own process: request limits and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.db import Pool
from core.redis import Redis
from services.departments import DepartmentEndpoints
from services.simulators import RunningServer
from tests.conftest import MASTER_KEY, reset_state
from tests.support.processes import ServerProcess, server_process


@pytest.fixture
async def server(
    database_url: str, redis_url: str, department_endpoints: DepartmentEndpoints, pool: Pool, redis: Redis
) -> AsyncIterator[ServerProcess]:
    await reset_state(pool, redis)
    departments = {name: getattr(department_endpoints, name) for name in department_endpoints.__struct_fields__}
    async with server_process(
        database_url=database_url, redis_url=redis_url, master_key=MASTER_KEY, departments=departments
    ) as base:
        yield base


async def test_oversized_body_is_413_problem(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        response = await client.post(
            "/v1/auth/otp", content=b'{"phone":"' + b"1" * 100_000 + b'"}', headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_oversized_headers_are_refused_without_a_500(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        try:
            response = await client.get("/health/live", headers={"x-padding": "a" * 200_000})
        except httpx.HTTPError:
            return  # the server closed the connection: refused, as intended
    assert 400 <= response.status_code < 500


async def test_graceful_shutdown_finishes_in_flight_requests(
    server: ServerProcess, simulators: dict[str, RunningServer]
) -> None:
    sms = simulators["sms"].base_url
    async with httpx.AsyncClient() as control:
        await control.post(f"{sms}/_sim/faults", json={"latency_ms": 1500})
        try:
            async with httpx.AsyncClient(base_url=server, timeout=10) as client:
                in_flight = asyncio.create_task(client.post("/v1/auth/otp", json={"phone": "13100000001"}))
                await asyncio.sleep(0.5)  # the request is now waiting on the slow SMS gateway
                server.process.send_signal(signal.SIGTERM)
                response: Any = await in_flight
        finally:
            await control.delete(f"{sms}/_sim/faults")
    assert response.status_code == 202
    assert await asyncio.to_thread(server.process.wait, 20) == 0
