"""Breakers, the retry budget, coalescing and the cache, seen through the BFF and its /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
from httpx import AsyncClient as AsyncTestClient

from core.redis import Redis
from services.resilience import BreakerConfig, RetryConfig
from tests.integration.bff.screens.conftest import FAST, LI_SI_PHONE, AppFactory, Sim

SignIn = Callable[..., Awaitable[dict[str, str]]]
CARD = "GET /v1/me/card"


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            sample, _, value = line.rpartition(" ")
            found = ",".join(sorted(sample[len(name) + 1 : -1].split(",")))
            if found == wanted:
                return float(value)
    return None


async def socsec_state(client: AsyncTestClient, headers: dict[str, str]) -> str:
    response = await client.get("/v1/me/home", headers=headers)
    assert response.status_code == 200
    state: str = response.json()["sections"]["socsec"]["state"]
    return state


async def test_breaker_opens_and_later_closes(make_app: AppFactory, citizen: SignIn, sim: Sim) -> None:
    settings = msgspec.structs.replace(
        FAST, breaker=BreakerConfig(failure_threshold=3, open_s=0.5), retry=RetryConfig(max_attempts=1)
    )
    labels = {"department": "socsec", "endpoint": "all"}
    async with make_app(settings) as (_, client):
        headers = await citizen(client)
        await sim.faults("socsec", error_rate=1.0)
        for _ in range(3):
            assert await socsec_state(client, headers) == "unavailable"
        assert await sim.count("socsec", CARD) == 3
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "onecity_department_breaker_state", **labels) == 2, "open"
        for _ in range(5):
            assert await socsec_state(client, headers) == "unavailable"
        assert await sim.count("socsec", CARD) == 3, "open: the department is left alone"
        await sim.clear("socsec")
        await asyncio.sleep(0.55)
        assert await socsec_state(client, headers) == "ok", "the half-open probe succeeded"
        assert await sim.count("socsec", CARD) == 4
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "onecity_department_breaker_state", **labels) == 0, "closed again"
        for to_state in ("open", "half_open", "closed"):
            transitions = [
                line
                for line in metrics.splitlines()
                if line.startswith("onecity_department_breaker_transitions_total{")
                and 'department="socsec"' in line
                and f'to_state="{to_state}"' in line
            ]
            assert transitions, f"no transition to {to_state} exported"


async def test_retries_stay_within_budget(make_app: AppFactory, citizen: SignIn, sim: Sim) -> None:
    # Breaker out of the way, so every screen load reaches the department and wants a retry.
    settings = msgspec.structs.replace(
        FAST,
        breaker=BreakerConfig(failure_threshold=10_000, failure_rate=1.0, min_calls=10_000),
        retry=RetryConfig(max_attempts=2, budget_initial=2, budget_ratio=0.2, backoff_base_s=0.001),
    )
    loads = 20
    async with make_app(settings) as (_, client):
        headers = await citizen(client)
        await sim.faults("transport", error_rate=1.0)
        for _ in range(loads):
            response = await client.get("/v1/me/home", headers=headers)
            assert response.json()["sections"]["transport"]["state"] == "unavailable"
    calls = await sim.count("transport", CARD)
    assert loads < calls <= loads + 2 + 0.2 * loads, f"{calls} upstream calls for {loads} screens"


async def test_concurrent_screens_share_upstream_calls(make_app: AppFactory, citizen: SignIn, sim: Sim) -> None:
    # Generous deadlines: this is about sharing calls, and a busy machine must not turn a
    # slow-but-successful call into a timeout that the assertion would misread.
    roomy = msgspec.structs.replace(FAST, deadline_ms=5000, default_deadline_ms=5000, call_timeout_ms=4000)
    async with make_app(roomy) as (_, client):
        headers = await citizen(client)
        for name in ("health", "transport", "socsec"):
            await sim.faults(name, latency_ms=150)
        responses = await asyncio.gather(*(client.get("/v1/me/home", headers=headers) for _ in range(10)))
    for response in responses:
        assert {s["state"] for s in response.json()["sections"].values()} == {"ok"}
    assert await sim.count("health", "GET /v1/me/tests") == 1
    assert await sim.count("health", "GET /v1/me/risk") == 1
    assert await sim.count("transport", CARD) == 1
    assert await sim.count("socsec", CARD) == 1


async def test_cache_serves_repeat_views_and_survives_a_flush(
    make_app: AppFactory, citizen: SignIn, sim: Sim, redis: Redis
) -> None:
    async with make_app(FAST) as (_, client):
        headers = await citizen(client)
        first = (await client.get("/v1/me/home", headers=headers)).json()
        # The cache is written after the answer, off the request's path: wait for the entries.
        for _ in range(200):
            if len(await redis.keys("oc:fan:*")) >= 4:
                break
            await asyncio.sleep(0.025)
        second = (await client.get("/v1/me/home", headers=headers)).json()
        assert second == first, "served from the cache, as_of unchanged"
        assert await sim.count("transport", CARD) == 1
        await redis.flushdb()  # sessions live in PostgreSQL; only the cache is lost
        third = (await client.get("/v1/me/home", headers=headers)).json()
    assert {s["state"] for s in third["sections"].values()} == {"ok"}
    assert await sim.count("transport", CARD) == 2, "asked the department again"


async def test_three_slow_home_screens_of_one_citizen_leave_the_breaker_closed(
    make_app: AppFactory, citizen: SignIn, sim: Sim
) -> None:
    labels = {"department": "health", "endpoint": "all"}
    async with make_app(FAST) as (_, client):  # the department breakers' defaults
        zhang = await citizen(client)
        li = await citizen(client, LI_SI_PHONE)
        await sim.faults("health", latency_ms=2000)
        for _ in range(3):
            response = await client.get("/v1/me/home", headers=zhang)
            assert response.json()["sections"]["health"]["state"] == "unavailable"
        assert metric((await client.get("/metrics")).text, "onecity_department_breaker_state", **labels) == 0
        await sim.clear("health")
        other = (await client.get("/v1/me/home", headers=li)).json()
    assert other["sections"]["health"]["state"] == "ok", "one citizen's slow screens shut nobody else out"
