"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

from services.resilience import BreakerConfig, BreakerState, CircuitBreaker
from tests.unit.services.resilience.conftest import FakeClock

CONFIG = BreakerConfig(failure_threshold=3, failure_rate=0.5, min_calls=6, window_s=10.0, open_s=2.0, max_open_s=5.0)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        permit.failure()


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        permit.success()


def test_opens_after_a_run_of_failures_and_fails_fast(clock: FakeClock) -> None:
    breaker = CircuitBreaker(CONFIG, clock=clock)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.acquire() is None, "open: fail fast"
    assert breaker.retry_after() == 2.0


def test_a_success_resets_the_run(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=3, min_calls=100), clock=clock)
    for _ in range(10):
        fail(breaker, 2)
        succeed(breaker)
    assert breaker.state is BreakerState.CLOSED, "2 failures at a time never make a run of 3"


def test_failure_rate_over_the_window_opens(clock: FakeClock) -> None:
    breaker = CircuitBreaker(CONFIG, clock=clock)
    for _ in range(3):
        succeed(breaker)
        fail(breaker)
    assert breaker.state is BreakerState.OPEN, "3 failures in 6 calls is 50 %"


def test_old_calls_leave_the_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(CONFIG, clock=clock)
    for _ in range(2):
        succeed(breaker)
        fail(breaker)
    clock.advance(11.0)  # those four are out of the window now
    succeed(breaker)
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_probe_success_closes(clock: FakeClock) -> None:
    transitions: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(CONFIG, clock=clock, on_transition=lambda old, new: transitions.append((old, new)))
    fail(breaker, 3)
    clock.advance(2.0)
    probe = breaker.acquire()
    assert probe is not None
    assert probe.probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire() is None, "one probe at a time"
    probe.success()
    assert breaker.state is BreakerState.CLOSED
    assert transitions == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED, "closing starts a fresh count"


def test_failed_probe_reopens_for_longer_up_to_the_cap(clock: FakeClock) -> None:
    breaker = CircuitBreaker(CONFIG, clock=clock)
    fail(breaker, 3)
    waits = []
    for _ in range(3):
        waits.append(breaker.retry_after())
        clock.advance(breaker.retry_after())
        fail(breaker)  # the probe
    assert waits == [2.0, 4.0, 5.0]
    clock.advance(5.0)
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 3)
    assert breaker.retry_after() == 2.0, "after closing, the wait starts over"


def test_released_probe_frees_the_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker(CONFIG, clock=clock)
    fail(breaker, 3)
    clock.advance(2.0)
    probe = breaker.acquire()
    assert probe is not None
    probe.release()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire() is not None


def test_verdicts_from_before_a_transition_are_ignored(clock: FakeClock) -> None:
    breaker = CircuitBreaker(CONFIG, clock=clock)
    slow = breaker.acquire()
    assert slow is not None
    fail(breaker, 3)
    assert breaker.state is BreakerState.OPEN
    slow.success()  # started while closed, ended while open: says nothing about now
    assert breaker.state is BreakerState.OPEN
    slow.failure()  # and a second verdict on the same permit is ignored too
    assert breaker.retry_after() == 2.0


def test_judges_only_from_the_minimum_volume(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=3, min_calls=3, min_volume=5), clock=clock)
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED, "4 failing calls are below the volume to judge from"
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_the_minimum_volume_counts_within_the_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=3, min_volume=5, window_s=10.0), clock=clock)
    fail(breaker, 4)
    clock.advance(11.0)
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED, "never 5 calls in one window"
