"""The resilient department layer over real HTTP: coalescing, SWR, Redis trouble, retries,
breakers, deadlines and the Protocol (drop-in) face."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import pytest
from prometheus_client import REGISTRY

from core.redis import Redis, create_redis
from services import DepartmentMalformedError, DepartmentTimeoutError, TransportCard
from services.fanout import DepartmentPolicy, FanoutSettings, audit_subject_of
from services.resilience import BreakerConfig, BreakerState, CacheTtl, Deadline, RetryConfig, deadline_scope
from tests.integration.services.conftest import ZHANG_SAN
from tests.integration.services.fanout.conftest import (
    FAST,
    Collected,
    LayerFactory,
    Simulators,
    closed_port,
    count,
    faults,
)

CARD = "GET /v1/me/card"


def with_ttl(department: str, resource: str, ttl: CacheTtl, base: FanoutSettings = FAST) -> FanoutSettings:
    policy: DepartmentPolicy = base.policy(department)
    policy = msgspec.structs.replace(policy, ttls={**policy.ttls, resource: ttl})
    return msgspec.structs.replace(base, **{department: policy})


NO_BREAKER = BreakerConfig(failure_threshold=10_000, failure_rate=1.0, min_calls=10_000)


async def test_concurrent_identical_reads_share_one_upstream_call(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    transport = layer().transport
    await faults(http, simulators, "transport", latency_ms=200)
    results = await asyncio.gather(*(transport.read_card(ZHANG_SAN, purpose="test") for _ in range(20)))
    assert {r.state for r in results} == {"ok"}
    assert len({r.as_of for r in results}) == 1
    assert await count(http, simulators, "transport", CARD) == 1


async def test_stale_while_revalidate(layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators) -> None:
    ttl = CacheTtl(fresh_s=0.3, revalidate_s=60, stale_if_error_s=3600)
    patient = msgspec.structs.replace(FAST, call_timeout_ms=3000, default_deadline_ms=3000)
    transport = layer(with_ttl("transport", "card", ttl, patient)).transport
    first = await transport.read_card(ZHANG_SAN, purpose="test")
    assert (first.state, first.source) == ("ok", "department")
    again = await transport.read_card(ZHANG_SAN, purpose="test")
    assert (again.source, again.as_of) == ("cache", first.as_of), "fresh: served from the cache"
    assert await count(http, simulators, "transport", CARD) == 1
    await asyncio.sleep(0.4)
    # Past fresh, inside the revalidation window: the old answer at once, a refresh behind it.
    await faults(http, simulators, "transport", latency_ms=1000)
    started = time.perf_counter()
    served = await transport.read_card(ZHANG_SAN, purpose="test")
    assert time.perf_counter() - started < 0.5, "not waiting for the department"
    assert (served.state, served.source, served.as_of) == ("ok", "cache", first.as_of)
    await asyncio.sleep(0.1)
    assert await count(http, simulators, "transport", CARD) == 2, "refreshing in the background"
    for _ in range(100):
        refreshed = await transport.read_card(ZHANG_SAN, purpose="test")
        if refreshed.as_of != first.as_of:
            break
        await asyncio.sleep(0.05)
    assert refreshed.source == "cache"
    assert refreshed.as_of is not None
    assert first.as_of is not None
    assert refreshed.as_of > first.as_of


async def test_redis_flushed_mid_test(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators, redis: Redis
) -> None:
    transport = layer().transport
    assert (await transport.read_card(ZHANG_SAN, purpose="test")).source == "department"
    assert (await transport.read_card(ZHANG_SAN, purpose="test")).source == "cache"
    await redis.flushdb()
    after = await transport.read_card(ZHANG_SAN, purpose="test")
    assert (after.state, after.source) == ("ok", "department"), "the cache is only a cache"
    assert await count(http, simulators, "transport", CARD) == 2


async def test_redis_down_goes_to_the_department(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    dead = create_redis(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        transport = layer(redis_client=dead).transport
        started = time.perf_counter()
        results = [await transport.read_card(ZHANG_SAN, purpose="test") for _ in range(10)]
        assert {(r.state, r.source) for r in results} == {("ok", "department")}
        assert time.perf_counter() - started < 3.0
        assert await count(http, simulators, "transport", CARD) == 10
    finally:
        await dead.aclose()


async def test_retries_stay_within_the_budget(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    retry = RetryConfig(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.002, budget_initial=2, budget_ratio=0.2)
    socsec = layer(msgspec.structs.replace(FAST, breaker=NO_BREAKER, retry=retry)).socsec
    await faults(http, simulators, "socsec", error_rate=1.0)
    requests = 30
    for _ in range(requests):
        result = await socsec.read_card(ZHANG_SAN, purpose="test")
        assert (result.state, result.error) == ("unavailable", "unavailable")
    calls = await count(http, simulators, "socsec", CARD)
    assert calls > requests, "503s are retried"
    assert calls <= requests + 2 + 0.2 * requests, f"{calls} upstream calls: retries exceeded the budget"


async def test_rejections_are_neither_retried_nor_held_against_the_department(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    built = layer(msgspec.structs.replace(FAST, breaker=BreakerConfig(failure_threshold=2)))
    for _ in range(5):
        result = await built.socsec.read_card("not-an-id-number", purpose="test")  # the department answers 404
        assert (result.state, result.error) == ("unavailable", "rejected")
    assert await count(http, simulators, "socsec", CARD) == 5
    assert built.socsec.guard.breaker("card").state is BreakerState.CLOSED


@pytest.mark.parametrize("fault", [{"error_rate": 1.0}, {"malformed": True}, {"drop": True}])
async def test_breaker_opens_fails_fast_and_closes(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators, fault: dict[str, object]
) -> None:
    settings = msgspec.structs.replace(
        FAST, breaker=BreakerConfig(failure_threshold=3, open_s=0.3), retry=RetryConfig(max_attempts=1)
    )
    health = layer(settings).health
    labels = {"department": "health", "endpoint": "all"}
    opened_before = REGISTRY.get_sample_value(
        "onecity_department_breaker_transitions_total", {**labels, "from_state": "closed", "to_state": "open"}
    )
    await faults(http, simulators, "health", **fault)
    for _ in range(3):
        assert (await health.read_risk(ZHANG_SAN, purpose="test")).state == "unavailable"
    assert health.guard.breaker("risk").state is BreakerState.OPEN
    assert REGISTRY.get_sample_value("onecity_department_breaker_state", labels) == 2
    opened_after = REGISTRY.get_sample_value(
        "onecity_department_breaker_transitions_total", {**labels, "from_state": "closed", "to_state": "open"}
    )
    assert opened_after == (opened_before or 0) + 1
    started = time.perf_counter()
    fast = await health.read_tests(ZHANG_SAN, purpose="test")  # same department, shared breaker
    assert time.perf_counter() - started < 0.1, "open: fail fast"
    assert (fast.state, fast.error) == ("unavailable", "unavailable")
    assert fast.retry_after_s is not None
    assert await count(http, simulators, "health", "GET /v1/me/risk") == 3
    assert await count(http, simulators, "health", "GET /v1/me/tests") == 0
    await http.delete(f"{simulators['health'].base_url}/_sim/faults")
    await asyncio.sleep(0.35)
    assert (await health.read_risk(ZHANG_SAN, purpose="test")).state == "ok", "the half-open probe succeeds"
    assert health.guard.breaker("risk").state is BreakerState.CLOSED
    assert REGISTRY.get_sample_value("onecity_department_breaker_state", labels) == 0


async def test_endpoint_breakers_are_separate_where_configured(layer: LayerFactory) -> None:
    guard = layer().transport.guard
    assert guard.breaker("trips") is not guard.breaker("card")
    assert guard.breaker("card") is guard.breaker("anything-else")


async def test_protocol_face_fails_closed_and_read_face_serves_stale(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    ttl = CacheTtl(fresh_s=0, revalidate_s=0, stale_if_error_s=3600)
    built = layer(with_ttl("transport", "card", ttl))
    plain = built.as_departments()
    card = await plain.transport.card(ZHANG_SAN, purpose="test")
    assert isinstance(card, TransportCard)
    assert plain.registry is built.base.registry, "the other departments pass through"
    await faults(http, simulators, "transport", malformed=True)
    with pytest.raises(DepartmentMalformedError):
        await plain.transport.card(ZHANG_SAN, purpose="test")
    stale = await built.transport.read_card(ZHANG_SAN, purpose="test")
    assert (stale.state, stale.value, stale.error) == ("stale", card, "malformed")


async def test_the_deadline_reaches_protocol_calls_through_the_context(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    plain = layer(msgspec.structs.replace(FAST, call_timeout_ms=2000)).as_departments()
    await faults(http, simulators, "health", latency_ms=3000)
    started = time.perf_counter()
    with deadline_scope(Deadline.after(0.3)), pytest.raises(DepartmentTimeoutError):
        await plain.health.tests(ZHANG_SAN, purpose="test")
    assert time.perf_counter() - started < 0.3 + 0.4


async def test_every_read_is_audited_without_the_id_number(layer: LayerFactory, vault: object) -> None:
    sink = Collected()
    built = layer(audit=sink)
    await built.transport.read_card(ZHANG_SAN, purpose="home-screen", account_id="acc-1")
    await built.transport.read_card(ZHANG_SAN, purpose="transit-code")
    await built.socsec.read_card("not-an-id-number", purpose="home-screen", account_id="acc-1")
    first, second, third = sink.events
    assert (first.action, first.subject_id, first.outcome) == ("data.read", "acc-1", "success")
    assert dict(first.details) == {
        "department": "transport",
        "resource": "card",
        "purpose": "home-screen",
        "state": "ok",
        "source": "department",
    }
    assert second.subject_id == audit_subject_of(vault, ZHANG_SAN)  # type: ignore[arg-type]
    assert second.details["source"] == "cache"
    assert (third.outcome, third.details["error"]) == ("failure", "rejected")
    assert ZHANG_SAN not in repr(sink.events)


async def test_a_department_breaker_waits_for_its_minimum_volume(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    volume = FAST.breaker.min_volume
    assert volume == 20, "the department default"
    health = layer(msgspec.structs.replace(FAST, retry=RetryConfig(max_attempts=1))).health
    await faults(http, simulators, "health", error_rate=1.0)
    for _ in range(volume - 1):
        assert (await health.read_risk(ZHANG_SAN, purpose="test")).error == "unavailable"
    assert health.guard.breaker("risk").state is BreakerState.CLOSED, "a few citizens' reads are no verdict"
    assert await count(http, simulators, "health", "GET /v1/me/risk") == volume - 1
    await health.read_risk(ZHANG_SAN, purpose="test")
    assert health.guard.breaker("risk").state is BreakerState.OPEN
    short = await health.read_risk(ZHANG_SAN, purpose="test")
    assert (short.state, short.error) == ("unavailable", "unavailable")
    assert await count(http, simulators, "health", "GET /v1/me/risk") == volume, "open: not called"


async def test_attempts_our_deadline_cut_short_are_no_verdict_on_the_department(
    layer: LayerFactory, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    # The department answers after 400 ms; the attempt timeout is 300 ms.
    strict = BreakerConfig(failure_threshold=2, min_volume=1)
    settings = msgspec.structs.replace(FAST, breaker=strict, retry=RetryConfig(max_attempts=1))
    health = layer(settings).health
    await faults(http, simulators, "health", latency_ms=400)
    for _ in range(4):
        # A screen with 100 ms left: the deadline, not the department, ends the attempt.
        cut = await health.read_risk(ZHANG_SAN, purpose="test", deadline=Deadline.after(0.1))
        assert (cut.state, cut.error) == ("unavailable", "timeout")
    assert health.guard.breaker("risk").state is BreakerState.CLOSED
    assert await count(http, simulators, "health", "GET /v1/me/risk") == 4
    for _ in range(2):
        # The full attempt timeout and still no answer: that is the department.
        slow = await health.read_risk(ZHANG_SAN, purpose="test", deadline=Deadline.after(1.0))
        assert (slow.state, slow.error) == ("unavailable", "timeout")
    assert health.guard.breaker("risk").state is BreakerState.OPEN
