"""The admission policy of bff.peak: which tier is shed, when, and what the shed request gets.

The clock is stepped by hand, so every outcome is exact and nothing depends on how fast the
machine runs the test.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import msgspec
import pytest

from bff.peak import Admission

OVERLOADED = "https://onecity.example/problems/overloaded"


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admission(clock: Clock | None = None, *, tier0_latency_ms: int = 100) -> Admission:
    return Admission(
        max_in_flight=10,
        channel_max_in_flight=5,
        loop_lag_ms=500,
        tier0_latency_ms=tier0_latency_ms,
        retry_after_s=2,
        redis=cast(Any, None),  # the switch is set by hand here; watch() is not run
        clock=clock or Clock(),
    )


def _verdicts(admission: Admission, now: float) -> list[str | None]:
    return [admission.shed_reason(tier, "app", now) for tier in (0, 1, 2)]


class Downstream:
    """The application behind the middleware: answers 200, or holds a request until released."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gate = self.release.get(scope["path"])
        if gate is not None:
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class Answer(msgspec.Struct):
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


async def _call(middleware: Any, method: str, path: str) -> Answer:
    scope = {"type": "http", "method": method, "path": path, "headers": [], "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], headers, msgspec.json.decode(body["body"]))


def test_sustained_event_loop_lag_sheds_tier2_then_tier1_never_tier0() -> None:
    admission = _admission()
    assert _verdicts(admission, 0.0) == [None, None, None]
    admission.lag_s = 0.6
    assert _verdicts(admission, 0.0) == [None, None, "overload"]
    admission.lag_s = 1.1
    assert _verdicts(admission, 0.0) == [None, "overload", "overload"]
    admission.lag_s, admission.peak = 0.0, True
    assert _verdicts(admission, 0.0) == [None, None, "peak"]
    admission.in_flight = 4  # peak mode: tier 1 gets two fifths of the budget
    assert _verdicts(admission, 0.0)[:2] == [None, "budget"]


def test_slow_own_tier0_answers_shed_tier2_then_tier1_and_the_memory_fades() -> None:
    admission = _admission()
    for _ in range(100):  # verifications answering in 150 ms: the worker queues its work
        admission.tier0_done(0.150)
    assert _verdicts(admission, 0.0) == [None, None, "overload"]
    for _ in range(100):
        admission.tier0_done(0.250)
    assert _verdicts(admission, 0.0) == [None, "overload", "overload"]
    admission.fade_tier0()  # answers arrived since the last poll: nothing fades yet
    assert admission.shed_reason(1, "app", 0.0) == "overload"
    for _ in range(4):  # two seconds without a tier 0 answer
        admission.fade_tier0()
    assert _verdicts(admission, 0.0) == [None, None, None]


def test_own_work_requests_waiting_beyond_the_limit_shed_before_any_answer_arrives() -> None:
    admission = _admission(tier0_latency_ms=125)  # 1/8 s: every time below is exact in binary
    first = admission.own_work_started(10.0)
    admission.own_work_started(10.0)
    # Two requests stuck for a second are not a queue (one slow commit, one slow call).
    assert admission.queue_delay_s(11.0) == 0.0
    assert _verdicts(admission, 11.0) == [None, None, None]
    admission.own_work_started(10.125)  # the third: its age is what all three have waited at least
    assert admission.queue_delay_s(10.25) == 0.125
    assert _verdicts(admission, 10.25) == [None, None, None]  # at the limit, not beyond it
    assert _verdicts(admission, 10.375) == [None, None, "queue"]
    assert _verdicts(admission, 10.5) == [None, "queue", "queue"]
    # The oldest answers (its 500 ms move the average only a little): two are left in flight.
    admission.own_work_done(first, 10.5)
    assert admission.tier0_s == pytest.approx(0.05 * 0.5)
    assert _verdicts(admission, 10.5) == [None, None, None]
    admission.own_work_started(10.5)  # a fresh third: the queue is as old as the youngest of three
    assert admission.queue_delay_s(10.5) == 0.0
    assert _verdicts(admission, 10.5) == [None, None, None]


def test_nothing_in_flight_is_no_queue() -> None:
    admission = _admission()
    ticket = admission.own_work_started(5.0)
    admission.own_work_done(ticket, 5.01)
    assert admission.queue_delay_s(50.0) == 0.0
    assert _verdicts(admission, 50.0) == [None, None, None]


def test_budget_shares_shed_tier2_then_tier1_then_tier0() -> None:
    admission = _admission()
    admission.in_flight = 5
    assert _verdicts(admission, 0.0) == [None, None, "budget"]
    admission.in_flight = 8
    assert _verdicts(admission, 0.0) == [None, "budget", "budget"]
    admission.in_flight = 10
    assert _verdicts(admission, 0.0) == ["budget", "budget", "budget"]


async def test_queued_verifications_shed_tier2_then_tier1_with_503_retry_after_and_problem_json() -> None:
    clock = Clock()
    admission = _admission(clock)
    downstream = Downstream()
    middleware = admission.middleware(downstream)
    downstream.release["/v1/codes/verify"] = asyncio.Event()
    verifies = [asyncio.create_task(_call(middleware, "POST", "/v1/codes/verify")) for _ in range(3)]
    await asyncio.sleep(0)  # the verifications are admitted and wait downstream
    assert admission.in_flight == 3

    clock.now += 0.15
    image = await _call(middleware, "GET", "/v1/me/codes/transit/image")
    assert image.status == 503
    assert image.headers["retry-after"] == "2" and image.headers["cache-control"] == "no-store"
    assert image.headers["content-type"].startswith("application/problem+json")
    assert image.body["type"] == OVERLOADED and image.body["tier"] == 2 and image.body["status"] == 503
    assert (await _call(middleware, "GET", "/v1/me/home")).status == 200
    assert (await _call(middleware, "GET", "/v1/codes/keys")).status == 200

    clock.now += 0.15
    home = await _call(middleware, "GET", "/v1/me/home")
    assert home.status == 503 and home.body["tier"] == 1
    assert (await _call(middleware, "POST", "/v1/me/codes/transit")).status == 200  # tier 0 is never queue-shed

    downstream.release["/v1/codes/verify"].set()
    assert [answer.status for answer in await asyncio.gather(*verifies)] == [200, 200, 200]
    assert admission.in_flight == 0 and admission.queue_delay_s(clock.now) == 0.0
    assert (await _call(middleware, "GET", "/v1/me/codes/transit/image")).status == 200


async def test_health_and_metrics_are_never_shed() -> None:
    clock = Clock()
    admission = _admission(clock)
    admission.peak, admission.lag_s, admission.in_flight = True, 10.0, 10
    middleware = admission.middleware(Downstream())
    assert (await _call(middleware, "GET", "/health/ready")).status == 200
    assert (await _call(middleware, "GET", "/metrics")).status == 200
