"""Settings of the fan-out: deadlines, timeouts, breaker, retry budget, cache TTLs per resource.

The numbers and why they are what they are: ``docs/fanout.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

import msgspec

from core.levels import Level
from services.fanout.pools import PoolSettings
from services.resilience import BreakerConfig, CacheTtl, RetryConfig

__all__ = ["DEFAULT_TTLS", "DepartmentBreakerConfig", "DepartmentPolicy", "FanoutSettings", "Level"]

_MINUTE: Final = 60.0
_HOUR: Final = 3600.0
_DAY: Final = 86400.0

DEFAULT_TTLS: Final[Mapping[str, Mapping[str, CacheTtl]]] = {
    # Test results and risk status change within the day and drive the health code: short fresh
    # window; a day-old answer may still be shown, marked stale, when the department is down.
    "health": {
        "tests": CacheTtl(fresh_s=_MINUTE, revalidate_s=10 * _MINUTE, stale_if_error_s=_DAY),
        "risk": CacheTtl(fresh_s=_MINUTE, revalidate_s=10 * _MINUTE, stale_if_error_s=_DAY),
        "vaccinations": CacheTtl(fresh_s=_HOUR, revalidate_s=_DAY, stale_if_error_s=7 * _DAY),
    },
    # The balance changes with every ride: 30 s fresh.
    "transport": {
        "card": CacheTtl(fresh_s=30.0, revalidate_s=5 * _MINUTE, stale_if_error_s=_DAY),
        "trips": CacheTtl(fresh_s=_MINUTE, revalidate_s=10 * _MINUTE, stale_if_error_s=_DAY),
    },
    # Card status and monthly contributions change rarely.
    "socsec": {
        "card": CacheTtl(fresh_s=10 * _MINUTE, revalidate_s=_HOUR, stale_if_error_s=7 * _DAY),
        "contributions": CacheTtl(fresh_s=_HOUR, revalidate_s=_DAY, stale_if_error_s=30 * _DAY),
    },
}


class DepartmentBreakerConfig(BreakerConfig, frozen=True, kw_only=True):
    """:class:`BreakerConfig` of a department: it judges only from 20 calls in its window.

    Fewer are one or two citizens' screens, not evidence about the department: without the floor,
    three slow home screens of one citizen would open the health breaker for everyone. A subclass rather than
    a value in :class:`FanoutSettings`, so that setting one breaker variable from the
    environment keeps this default.
    """

    min_volume: Annotated[int, msgspec.Meta(ge=1)] = 20


class DepartmentPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What is specific to one department.

    Attributes:
        required_level: The citizen's identity level below which nothing is asked (the
            department needs the ID number, which only ``L3``+ accounts have).
        call_timeout_ms: Per-attempt timeout; ``None`` takes :attr:`FanoutSettings.call_timeout_ms`.
        endpoint_breakers: Resources with a breaker of their own (they fail independently of
            the rest of the department, e.g. a history query on another back end); the others
            share the department's breaker.
        ttls: Cache ages per resource; a resource missing here is not cached.
    """

    required_level: Level = "L3"
    call_timeout_ms: Annotated[int, msgspec.Meta(ge=1)] | None = None
    endpoint_breakers: tuple[str, ...] = ()
    ttls: dict[str, CacheTtl] = msgspec.field(default_factory=dict)


def _policy(name: str, *, endpoint_breakers: tuple[str, ...] = ()) -> DepartmentPolicy:
    return DepartmentPolicy(ttls=dict(DEFAULT_TTLS[name]), endpoint_breakers=endpoint_breakers)


class FanoutSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The fan-out's knobs.

    Attributes:
        deadline_ms: One screen's overall deadline: every section answers by then.
        default_deadline_ms: Deadline of calls made without one (through the department
            Protocols, e.g. by the codes domain) and of background revalidations.
        call_timeout_ms: Per-attempt timeout inside the deadline (so a retry still fits).
        min_attempt_ms: No attempt starts with less than this left of the deadline.
        cache_enabled: Whether department answers are cached in Redis at all.
        cache_timeout_ms: Longest a cache read or write may take before it is skipped.
        breaker: When breakers open and close (one per department, see ``endpoint_breakers``);
            only department failures count, not attempts our own deadline cut short.
        retry: Attempts, backoff and the retry budget (per department).
        pool: Connection limits of each department's own HTTP pool.
    """

    deadline_ms: Annotated[int, msgspec.Meta(ge=50, le=30_000)] = 800
    default_deadline_ms: Annotated[int, msgspec.Meta(ge=50, le=30_000)] = 2_000
    call_timeout_ms: Annotated[int, msgspec.Meta(ge=10, le=30_000)] = 500
    min_attempt_ms: Annotated[int, msgspec.Meta(ge=0, le=5_000)] = 50
    cache_enabled: bool = True
    cache_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=5_000)] = 150
    breaker: DepartmentBreakerConfig = DepartmentBreakerConfig()
    retry: RetryConfig = RetryConfig()
    pool: PoolSettings = PoolSettings()
    health: DepartmentPolicy = msgspec.field(default_factory=lambda: _policy("health"))
    transport: DepartmentPolicy = msgspec.field(
        default_factory=lambda: _policy("transport", endpoint_breakers=("trips",))
    )
    socsec: DepartmentPolicy = msgspec.field(
        default_factory=lambda: _policy("socsec", endpoint_breakers=("contributions",))
    )

    def policy(self, department: str) -> DepartmentPolicy:
        """The policy of ``health``, ``transport`` or ``socsec``."""
        if department not in ("health", "transport", "socsec"):
            raise KeyError(department)
        policy: DepartmentPolicy = getattr(self, department)
        return policy
