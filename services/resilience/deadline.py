"""Deadlines: one point in (monotonic) time by which a whole piece of work must be done.

A screen gets one :class:`Deadline` (e.g. 800 ms from the request's arrival) and every
department call inside it derives its own timeout from what is left, so per-call timeouts and
retries can never add up past the screen's budget. The deadline also travels implicitly through
a context variable (:func:`deadline_scope`), so code that only sees a department Protocol (which
has no deadline argument) still honours the caller's budget.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Final

__all__ = ["Clock", "Deadline", "current_deadline", "deadline_scope"]

Clock = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic`` unless a test injects its own)."""

_CURRENT: Final[ContextVar[Deadline | None]] = ContextVar("onecity_deadline", default=None)


class Deadline:
    """A fixed point on a monotonic clock.

    Args:
        at: The clock reading at which the deadline passes.
        clock: The clock ``at`` refers to.
    """

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, *, clock: Clock = time.monotonic) -> None:
        self.at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, *, clock: Clock = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(clock() + seconds, clock=clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        """Whether no time is left."""
        return self.remaining() <= 0.0

    def capped(self, seconds: float) -> float:
        """``seconds``, or what is left of the deadline if that is less (a per-call timeout)."""
        return min(seconds, self.remaining())

    def earliest(self, other: Deadline | None) -> Deadline:
        """Whichever of ``self`` and ``other`` passes first."""
        if other is None or self.at <= other.at:
            return self
        return other

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f}s)"


def current_deadline() -> Deadline | None:
    """The deadline set by the innermost :func:`deadline_scope`, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` (or an enclosing, earlier one) the current deadline inside the block.

    Tasks created inside the block inherit it (asyncio copies the context into new tasks).
    """
    effective = deadline.earliest(_CURRENT.get())
    token = _CURRENT.set(effective)
    try:
        yield effective
    finally:
        _CURRENT.reset(token)
