"""A circuit breaker for one upstream (a department, or one endpoint of it).

Why not a library: purgatory (the suggested one) is not installed in this project and, more to
the point, trips only on a run of consecutive failures; we also need a failure *rate* over a
time window (a department failing every other call never produces a long run), permits that
ignore verdicts from calls started before a transition (a slow call that succeeds after the
breaker opened must not close it), and a transition hook per instance for the metrics. That is
about 150 lines, tested in ``tests/unit/services/resilience/test_breaker.py``.

States:

- ``CLOSED``: calls flow. Opens after ``failure_threshold`` consecutive failures, or when at
  least ``min_calls`` calls in the last ``window_s`` seconds failed at ``failure_rate`` or more;
  either only once the window holds at least ``min_volume`` calls (a handful of slow requests
  of one citizen are not evidence that a department is down for everyone).
- ``OPEN``: calls are refused at once (fail fast) for ``open_s`` seconds, doubled after each
  failed probe up to ``max_open_s``.
- ``HALF_OPEN``: up to ``half_open_probes`` calls may go through; their success closes the
  breaker, a failure opens it again.

Every call takes a :class:`Permit` from :meth:`CircuitBreaker.acquire` and reports exactly one
verdict on it (``success``, ``failure`` or ``release`` for "no verdict", e.g. cancelled).
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated

import msgspec

from services.resilience.deadline import Clock

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker", "Permit", "TransitionListener"]


class BreakerState(enum.IntEnum):
    """The breaker's state; the integer is what the metrics gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


TransitionListener = Callable[[BreakerState, BreakerState], None]
"""Called with ``(old, new)`` on every state change."""


class BreakerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """When a breaker opens and how it recovers (see the module docstring).

    ``min_volume`` is 1 here (no minimum: the generic default, e.g. for the Redis cache's own
    breaker); the department breakers set their own (``services.fanout.settings``).
    """

    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    failure_rate: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    min_calls: Annotated[int, msgspec.Meta(ge=1)] = 10
    min_volume: Annotated[int, msgspec.Meta(ge=1)] = 1
    window_s: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0
    open_s: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    max_open_s: Annotated[float, msgspec.Meta(gt=0.0)] = 60.0
    half_open_probes: Annotated[int, msgspec.Meta(ge=1)] = 1


class Permit:
    """Permission for one call; report its verdict exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_done", "_generation", "probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, *, probe: bool) -> None:
        self._breaker = breaker
        self._generation = generation
        self._done = False
        self.probe = probe

    def success(self) -> None:
        """The upstream answered properly."""
        if not self._done:
            self._done = True
            self._breaker._on_verdict(self, failed=False)

    def failure(self) -> None:
        """The upstream failed (timeout, unreachable, 5xx, garbage)."""
        if not self._done:
            self._done = True
            self._breaker._on_verdict(self, failed=True)

    def release(self) -> None:
        """No verdict (the call was cancelled by its caller): just free the probe slot."""
        if not self._done:
            self._done = True
            self._breaker._on_release(self)


class CircuitBreaker:
    """One breaker's state machine; not thread-safe (one per event loop, like everything here).

    Args:
        config: Thresholds and timings.
        clock: Monotonic clock, injectable for tests.
        on_transition: Called on each state change (metrics, logs).
    """

    def __init__(
        self, config: BreakerConfig, *, clock: Clock = time.monotonic, on_transition: TransitionListener | None = None
    ) -> None:
        self.config = config
        self._clock = clock
        self._listener = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 0  # bumped on every transition; verdicts of older permits are ignored
        self._consecutive = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self._opened_at = 0.0
        self._open_for = config.open_s
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose wait is over still reads ``OPEN`` until
        the next :meth:`acquire` sends a probe)."""
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through; 0 otherwise."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._open_for - self._clock())

    def acquire(self) -> Permit | None:
        """A permit for one call, or ``None`` to fail fast."""
        if self._state is BreakerState.OPEN:
            if self.retry_after() > 0.0:
                return None
            self._transition(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._probes >= self.config.half_open_probes:
                return None
            self._probes += 1
            return Permit(self, self._generation, probe=True)
        return Permit(self, self._generation, probe=False)

    # verdicts ---------------------------------------------------------------------------

    def _on_release(self, permit: Permit) -> None:
        if permit.probe and permit._generation == self._generation:
            self._probes -= 1

    def _on_verdict(self, permit: Permit, *, failed: bool) -> None:
        if permit._generation != self._generation:
            return  # started before the last transition: says nothing about the present
        if self._state is BreakerState.HALF_OPEN:
            self._probes -= 1
            if failed:
                self._open(backoff=True)
            else:
                self._close()
            return
        self._record(failed)
        if failed and self._should_open():
            self._open(backoff=False)

    def _record(self, failed: bool) -> None:
        now = self._clock()
        self._consecutive = self._consecutive + 1 if failed else 0
        self._window.append((now, failed))
        self._window_failures += failed
        horizon = now - self.config.window_s
        while self._window and self._window[0][0] < horizon:
            _, old_failed = self._window.popleft()
            self._window_failures -= old_failed

    def _should_open(self) -> bool:
        calls = len(self._window)
        if calls < self.config.min_volume:
            return False
        if self._consecutive >= self.config.failure_threshold:
            return True
        return calls >= self.config.min_calls and self._window_failures / calls >= self.config.failure_rate

    def _open(self, *, backoff: bool) -> None:
        # A failed probe means the upstream is still sick: wait longer before the next one.
        self._open_for = min(self._open_for * 2, self.config.max_open_s) if backoff else self.config.open_s
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        self._open_for = self.config.open_s
        self._consecutive = 0
        self._window.clear()
        self._window_failures = 0
        self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._probes = 0
        if self._listener is not None and old is not new:
            self._listener(old, new)
