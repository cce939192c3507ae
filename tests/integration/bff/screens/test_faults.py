"""Each department in turn down, hanging, slow, failing, garbled or dropping connections: the home
screen still answers 200 by the deadline, with that section ``unavailable`` (nothing cached) or
``stale`` (an older answer and its ``as_of``), and the other sections ``ok``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from services.fanout import FanoutSettings
from services.resilience import CacheTtl
from tests.integration.bff.screens.conftest import FAST, MARGIN_S, AppFactory, Sim, closed_port_url

SignIn = Callable[..., Awaitable[dict[str, str]]]
DEPARTMENTS = ("health", "transport", "socsec")
SINGLE = {"health": "/v1/me/health/records", "transport": "/v1/me/transport/card", "socsec": "/v1/me/socsec/card"}

# name -> simulator faults, or None for faults made by pointing the department elsewhere
FAULTS: dict[str, dict[str, Any] | None] = {
    "down": None,
    "500": None,
    "hang": {"hang": True},
    "slow_past_deadline": {"latency_ms": FAST.deadline_ms + 1000},
    "503": {"error_rate": 1.0},
    "malformed": {"malformed": True},
    "drop": {"drop": True},
}


def always_revalidate(base: FanoutSettings = FAST) -> FanoutSettings:
    """Every answer is stale at once but usable for an hour if the department fails."""
    ttl = CacheTtl(fresh_s=0, revalidate_s=0, stale_if_error_s=3600)
    changes = {}
    for name in DEPARTMENTS:
        policy = base.policy(name)
        changes[name] = msgspec.structs.replace(policy, ttls=dict.fromkeys(policy.ttls, ttl))
    return msgspec.structs.replace(base, **changes)


async def break_department(sim: Sim, department: str, fault: str, broken_department: str) -> dict[str, str]:
    """Apply ``fault``; returns department URL overrides for the faults that need one."""
    if fault == "down":
        return {department: closed_port_url()}
    if fault == "500":
        return {department: broken_department}
    faults = FAULTS[fault]
    assert faults is not None
    await sim.faults(department, **faults)
    return {}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("department", DEPARTMENTS)
async def test_section_unavailable_others_ok_on_time(
    make_app: AppFactory, citizen: SignIn, sim: Sim, broken_department: str, department: str, fault: str
) -> None:
    urls = await break_department(sim, department, fault, broken_department)
    async with make_app(FAST, **urls) as (_, client):
        headers = await citizen(client)
        started = time.perf_counter()
        home = await client.get("/v1/me/home", headers=headers)
        elapsed = time.perf_counter() - started
        single = await client.get(SINGLE[department], headers=headers)
    assert home.status_code == 200, home.text
    assert elapsed < FAST.deadline_ms / 1000 + MARGIN_S, f"home took {elapsed:.3f}s"
    sections = home.json()["sections"]
    broken = sections.pop(department)
    assert broken["state"] == "unavailable"
    assert "data" not in broken
    assert broken["retry_after_s"] >= 1
    assert {name: s["state"] for name, s in sections.items()} == dict.fromkeys(sections, "ok")
    assert single.status_code == 200, "an upstream never causes a 5xx"
    assert single.json()["state"] == "unavailable"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("department", DEPARTMENTS)
async def test_section_stale_with_cached_data(
    make_app: AppFactory, citizen: SignIn, sim: Sim, broken_department: str, department: str, fault: str
) -> None:
    settings = always_revalidate()
    async with make_app(settings) as (_, client):
        headers = await citizen(client)
        warm = (await client.get("/v1/me/home", headers=headers)).json()["sections"]
    assert {s["state"] for s in warm.values()} == {"ok"}
    urls = await break_department(sim, department, fault, broken_department)
    async with make_app(settings, **urls) as (_, client):  # a second process, same Redis
        started = time.perf_counter()
        home = await client.get("/v1/me/home", headers=headers)
        elapsed = time.perf_counter() - started
    assert home.status_code == 200, home.text
    assert elapsed < settings.deadline_ms / 1000 + MARGIN_S, f"home took {elapsed:.3f}s"
    sections = home.json()["sections"]
    assert sections[department] == {**warm[department], "state": "stale"}, "the older answer, with its as_of"
    for name in DEPARTMENTS:
        if name != department:
            assert sections[name]["state"] == "ok"
            asked_again = dt.datetime.fromisoformat(sections[name]["as_of"])
            assert asked_again > dt.datetime.fromisoformat(warm[name]["as_of"]), "the others were asked again"
