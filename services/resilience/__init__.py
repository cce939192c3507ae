"""Resilience building blocks for calls to upstreams: deadline, breaker, retry, coalescing, cache.

Each is one small module with no knowledge of departments; :mod:`services.fanout` composes them.
"""

from services.resilience.breaker import BreakerConfig, BreakerState, CircuitBreaker, Permit, TransitionListener
from services.resilience.cache import CacheEntry, CacheTtl, Freshness, SwrCache
from services.resilience.coalesce import Coalescer
from services.resilience.deadline import Clock, Deadline, current_deadline, deadline_scope
from services.resilience.retry import RetryBudget, RetryConfig, backoff_delay

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "CacheEntry",
    "CacheTtl",
    "CircuitBreaker",
    "Clock",
    "Coalescer",
    "Deadline",
    "Freshness",
    "Permit",
    "RetryBudget",
    "RetryConfig",
    "SwrCache",
    "TransitionListener",
    "backoff_delay",
    "current_deadline",
    "deadline_scope",
]
