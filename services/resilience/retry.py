"""Retries for idempotent reads: jittered backoff and a retry budget.

Why not a library: stamina (the suggested one) is not installed in this project, and its unit
is "retry this call until it succeeds or a timeout passes"; what we need per attempt is a
decision made from outside the call - is there deadline left for another attempt, is the
breaker still closed, is there budget - and stamina has no notion of a budget shared by all
calls to one upstream. What remains (a backoff formula and a token bucket) is small and tested
in ``tests/unit/services/resilience/test_retry.py``.

The budget is the guard against retry storms: every first attempt deposits ``budget_ratio``
tokens, every retry spends one, and the balance is capped at ``budget_max``. Over any period,
retries <= ``budget_initial`` + ``budget_ratio`` x requests (+ the cap's refills), so a
department that fails every call sees at most 20 % extra load, not 100 %.
"""

from __future__ import annotations

import math
import random
from typing import Annotated

import msgspec

__all__ = ["RetryBudget", "RetryConfig", "backoff_delay"]


class RetryConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How many attempts, how far apart, and how many retries in proportion to requests."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=5)] = 2
    backoff_base_s: Annotated[float, msgspec.Meta(ge=0.0)] = 0.025
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0.0)] = 0.2
    budget_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.2
    budget_initial: Annotated[float, msgspec.Meta(ge=0.0)] = 3.0
    budget_max: Annotated[float, msgspec.Meta(ge=0.0)] = 10.0


def backoff_delay(retry: int, config: RetryConfig, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry).

    "Equal jitter": half of the exponential step is fixed, half random, so retries of many
    clients spread out (no synchronized waves) yet never fire back-to-back.
    """
    step = min(config.backoff_max_s, math.ldexp(config.backoff_base_s, max(0, retry - 1)))  # base x 2^(retry-1)
    draw = rng.random() if rng is not None else random.random()  # noqa: S311 - jitter, not security
    return step / 2 + draw * step / 2


class RetryBudget:
    """A token bucket limiting retries to a fraction of requests, per upstream.

    Args:
        config: ``budget_ratio``, ``budget_initial`` and ``budget_max`` are used.
    """

    __slots__ = ("_balance", "_max", "_ratio")

    def __init__(self, config: RetryConfig) -> None:
        self._ratio = config.budget_ratio
        self._max = config.budget_max
        self._balance = min(config.budget_initial, config.budget_max)

    @property
    def balance(self) -> float:
        """Tokens available now."""
        return self._balance

    def deposit(self) -> None:
        """Count one original request (not a retry)."""
        self._balance = min(self._max, self._balance + self._ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; ``False`` (and no retry) when the budget is spent."""
        if self._balance < 1.0:
            return False
        self._balance -= 1.0
        return True
