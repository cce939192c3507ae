"""The simulators' fault injection (``/_sim/faults``) and request counting (``/_sim/stats``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from services.simulators import RunningServer

Simulators = dict[str, RunningServer]
TokenFactory = Callable[..., str]

ZHANG_SAN = "110101199003070011"


@pytest.fixture
def health(simulators: Simulators) -> str:
    base_url: str = simulators["health"].base_url
    return base_url


@pytest.fixture
def auth(make_token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token('health', ZHANG_SAN)}"}


async def set_faults(http: httpx.AsyncClient, base_url: str, **faults: object) -> dict[str, object]:
    response = await http.post(f"{base_url}/_sim/faults", json=faults)
    assert response.status_code == 200
    state: dict[str, object] = response.json()
    return state


async def count(http: httpx.AsyncClient, base_url: str, route: str) -> int:
    requests: dict[str, int] = (await http.get(f"{base_url}/_sim/stats")).json()["requests"]
    return requests.get(route, 0)


async def test_fault_state_updates_partially_and_clears(http: httpx.AsyncClient, health: str) -> None:
    assert (await http.get(f"{health}/_sim/faults")).json() == {
        "latency_ms": 0,
        "error_rate": 0.0,
        "hang": False,
        "malformed": False,
        "drop": False,
    }
    assert await set_faults(http, health, latency_ms=5) == {
        "latency_ms": 5,
        "error_rate": 0.0,
        "hang": False,
        "malformed": False,
        "drop": False,
    }
    state = await set_faults(http, health, error_rate=0.5)
    assert state["latency_ms"] == 5, "fields left out keep their value"
    assert state["error_rate"] == 0.5
    cleared = (await http.delete(f"{health}/_sim/faults")).json()
    assert cleared == {"latency_ms": 0, "error_rate": 0.0, "hang": False, "malformed": False, "drop": False}


@pytest.mark.parametrize("body", [{"error_rate": 1.5}, {"latency_ms": -1}, {"hang": "yes"}, {"unknown": 1}])
async def test_fault_updates_are_validated(http: httpx.AsyncClient, health: str, body: dict[str, object]) -> None:
    response = await http.post(f"{health}/_sim/faults", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_latency(http: httpx.AsyncClient, health: str, auth: dict[str, str]) -> None:
    await set_faults(http, health, latency_ms=200)
    started = time.perf_counter()
    response = await http.get(f"{health}/v1/me/tests", headers=auth)
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    await http.get(f"{health}/_sim/stats")
    assert time.perf_counter() - started < 0.2, "faults never apply to /_sim routes"


async def test_error_rate_one_answers_503(http: httpx.AsyncClient, health: str, auth: dict[str, str]) -> None:
    await set_faults(http, health, error_rate=1.0)
    for _ in range(3):
        response = await http.get(f"{health}/v1/me/tests", headers=auth)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 503
    # The faults apply before the token check too: a department that is down is down for everyone.
    assert (await http.get(f"{health}/v1/me/risk")).status_code == 503
    assert (await http.get(f"{health}/_sim/stats")).status_code == 200


async def test_error_rate_is_a_rate(http: httpx.AsyncClient, health: str, auth: dict[str, str]) -> None:
    await set_faults(http, health, error_rate=0.5)
    statuses = [(await http.get(f"{health}/v1/me/tests", headers=auth)).status_code for _ in range(60)]
    assert set(statuses) == {200, 503}


async def test_malformed_is_a_200_that_is_not_json(http: httpx.AsyncClient, health: str, auth: dict[str, str]) -> None:
    await set_faults(http, health, malformed=True)
    response = await http.get(f"{health}/v1/me/tests", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


async def test_drop_is_a_transport_error(http: httpx.AsyncClient, health: str, auth: dict[str, str]) -> None:
    await set_faults(http, health, drop=True)
    with pytest.raises(httpx.TransportError):
        await http.get(f"{health}/v1/me/tests", headers=auth)
    await http.delete(f"{health}/_sim/faults")
    assert (await http.get(f"{health}/v1/me/tests", headers=auth)).status_code == 200, "the client recovers"


async def test_hang_is_released_by_delete(http: httpx.AsyncClient, health: str, auth: dict[str, str]) -> None:
    await set_faults(http, health, hang=True)
    pending = asyncio.create_task(http.get(f"{health}/v1/me/tests", headers=auth))
    for _ in range(200):  # wait until the request has arrived and is hanging
        if await count(http, health, "GET /v1/me/tests") == 1:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert not pending.done(), "a hanging request gets no answer"
    await http.delete(f"{health}/_sim/faults")
    response = await asyncio.wait_for(pending, timeout=2)
    assert response.status_code == 200
    assert response.json()["tests"]


async def test_hang_keeps_a_posted_body(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    registry = simulators["registry"].base_url
    await set_faults(http, registry, hang=True)
    headers = {"Authorization": f"Bearer {make_token('registry', ZHANG_SAN)}"}
    body = {"name": "张三", "id_number": ZHANG_SAN}
    pending = asyncio.create_task(http.post(f"{registry}/v1/verify", json=body, headers=headers))
    for _ in range(200):
        if await count(http, registry, "POST /v1/verify") == 1:
            break
        await asyncio.sleep(0.01)
    await set_faults(http, registry, hang=False)  # turning hang off releases too
    response = await asyncio.wait_for(pending, timeout=2)
    assert response.json() == {"match": True}


async def test_hang_until_the_client_gives_up(health: str, auth: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        await impatient.post(f"{health}/_sim/faults", json={"hang": True})
        with pytest.raises(httpx.ReadTimeout):
            await impatient.get(f"{health}/v1/me/tests", headers=auth)


async def test_stats_count_contract_requests_by_route(
    http: httpx.AsyncClient, simulators: Simulators, auth: dict[str, str], make_token: TokenFactory
) -> None:
    health = simulators["health"].base_url
    for _ in range(3):
        await http.get(f"{health}/v1/me/tests", headers=auth)
    await http.get(f"{health}/v1/me/risk", headers=auth)
    await http.get(f"{health}/v1/me/risk")  # refused, but received
    await http.get(f"{health}/_sim/faults")  # control routes are not counted
    stats = (await http.get(f"{health}/_sim/stats")).json()
    # health owns matters, so it also counts cases per application number (none yet)
    assert stats == {"requests": {"GET /v1/me/tests": 3, "GET /v1/me/risk": 2}, "cases": {}, "events": {}}

    transport = simulators["transport"].base_url
    token = make_token("transport", ZHANG_SAN)
    await http.get(f"{transport}/v1/me/trips", headers={"Authorization": f"Bearer {token}"}, params={"since": "x"})
    assert (await http.get(f"{transport}/_sim/stats")).json() == {"requests": {"GET /v1/me/trips": 1}}

    assert (await http.delete(f"{health}/_sim/stats")).json() == {"requests": {}, "cases": {}, "events": {}}
    assert (await http.get(f"{health}/_sim/stats")).json() == {"requests": {}, "cases": {}, "events": {}}
