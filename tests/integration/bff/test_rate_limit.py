"""The per-address ceiling on the login routes is atomic across processes."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import msgspec

from bff.app import create_app
from bff.settings import Settings
from core.db import Pool
from core.redis import Redis
from tests.conftest import reset_state
from tests.support.asgi import running_app


async def burst(settings: Settings, *, requests: int = 20, apps: int = 2) -> list[httpx.Response]:
    """``requests`` concurrent OTP sends from one address with a limit of 5 a minute, spread
    over ``apps`` app instances (each with its own process-local state, as separate hosts)."""
    limited = msgspec.structs.replace(settings, server=msgspec.structs.replace(settings.server, auth_rate_per_minute=5))
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(running_app(create_app(limited))) for _ in range(apps)]
        sends = (clients[i % apps].post("/v1/auth/otp", json={"phone": f"1360000{i:04d}"}) for i in range(requests))
        return list(await asyncio.gather(*sends))


def assert_exactly_five_pass(responses: list[httpx.Response]) -> None:
    """5 sent (202), 15 refused with the limiter's 429 problem and headers."""
    assert sorted(r.status_code for r in responses) == [202] * 5 + [429] * 15, [r.text for r in responses]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/rate-limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "5"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Policy"] == "5; w=60"
    passed = next(r for r in responses if r.status_code == 202)
    assert int(passed.headers["RateLimit-Remaining"]) in range(5)


async def test_twenty_concurrent_requests_with_a_limit_of_five_pass_exactly_five(
    settings: Settings, pool: Pool, redis: Redis
) -> None:
    await reset_state(pool, redis)
    assert_exactly_five_pass(await burst(settings))
